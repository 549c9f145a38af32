// Package gpiodev is the real GPIO backend: lines of a Linux GPIO character
// device (/dev/gpiochipN) through periph.io's gpioioctl (pure Go; sysfs
// GPIO is gone from current Raspberry Pi OS). Lines are named as the board
// names them ("GPIO17") and found by their line number on the chip.
//
// periph's GPIOLine.Read switches an output line to an input with a
// pull-up, and logs its errors instead of returning them; the contract says
// reading an output returns the level it drives, so this backend remembers
// the level it drove. This was verified by reading periph's code: the
// machine tern is built on has no GPIO chip, and the conformance test skips
// there, saying so.
package gpiodev
