package boards_test

import (
	"fmt"

	"github.com/tern-iot/tern/boards"
)

func ExampleBoard_Line() {
	b, err := boards.Lookup("rpi4")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range []string{"GPIO17", "bcm2", "14", "pin12", "P1-27"} {
		p, err := b.Line(name)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-6s -> pin %d, %s %q\n", name, p.Physical, p.Name, p.Functions)
	}
	_, err = b.Line("pin6")
	fmt.Println(err)
	// Output:
	// GPIO17 -> pin 11, GPIO17 ["SPI1 CE1"]
	// bcm2   -> pin 3, GPIO2 ["I2C1 SDA"]
	// 14     -> pin 8, GPIO14 ["UART0 TXD" "UART1 TXD"]
	// pin12  -> pin 12, GPIO18 ["PCM CLK" "SPI1 CE0" "PWM0"]
	// P1-27  -> pin 27, GPIO0 ["ID_SD" "I2C0 SDA"]
	// boards: rpi4: line "pin6": gpio: no such line (pin 6 is GND, not a GPIO line)
}

func ExampleLookup() {
	_, err := boards.Lookup("pi4")
	fmt.Println(err)
	// Output: boards: board "pi4": boards: unknown board (known boards: generic, rpi3bp, rpi4, rpi5, rpizero2w, rpizerow, sim)
}
