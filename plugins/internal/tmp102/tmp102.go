// Package tmp102 reads a TI TMP102 temperature sensor from a job module:
// pointer register 0, two bytes, 12 bits at 0.0625 °C per bit, most
// significant byte first.
package tmp102

import "github.com/tern-iot/tern/sdk"

// Read returns the temperature in °C of the TMP102 at addr on bus.
func Read(bus string, addr uint16) (float64, error) {
	r := make([]byte, 2)
	if err := sdk.I2CTx(bus, addr, []byte{0}, r); err != nil {
		return 0, err
	}
	return Decode(r[0], r[1]), nil
}

// Decode turns the temperature register's two bytes into °C.
func Decode(msb, lsb byte) float64 { return float64(int16(uint16(msb)<<8|uint16(lsb))>>4) * 0.0625 }
