// Package i2ctest checks that an I2C backend keeps the i2c contract, the
// way gpiotest does for GPIO. It needs, on the bus under test, a device
// that behaves as a 24C02-style EEPROM at one address (a write of [reg,
// data...] stores data from reg on; a read returns bytes from the current
// address) and an address where nothing answers. hal/sim provides both; a
// real rig provides them with a 24C02 on the bus.
package i2ctest
