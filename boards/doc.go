// Package boards describes the boards tern runs on: their name, the model
// string the kernel reports, the GPIO chip to open, and the pin header with
// each pin's physical number, GPIO line and usual alternate functions.
//
// Boards are data, not code. Each board is a JSON file under data/boards/
// naming a header; each header is a JSON file under data/headers/, shared by
// every board with the same pinout (the Pi 3 B+, 4 B, Zero W and Zero 2 W all
// use rpi-40pin). The files are embedded in the binary and checked when the
// package is initialised, and again, against well-known facts, by the tests.
// Adding a board is adding a file:
//
//	data/boards/rpi3bp.json  {"name": "rpi3bp", "model": "Raspberry Pi 3 Model B Plus",
//	                          "gpiochip": "gpiochip0", "header": "rpi-40pin"}
//
// A board with another pinout adds its header file too.
//
// Lines on a board are named as the kernel and pinout.xyz name them:
// "GPIO17" is BCM line 17. Board.Line also accepts "BCM17", "17", and the
// physical pin as "pin11" or "P1-11", in any case, for operators who count
// pins on the header.
//
// Package boards depends on no backend: the agent builds one from a board,
// for example sim.NewGPIO(board.Lines()...). Unknown names are errors wrapping
// ErrUnknownBoard or gpio.ErrUnknownLine.
package boards
