// Package i2cdev is the real I2C backend: /dev/i2c-N buses through
// periph.io's sysfs I2C (pure Go), named as the board names them ("i2c1").
// A device that does not acknowledge its address (the kernel's ENXIO or
// EREMOTEIO) is i2c.ErrNoDevice. Verified against a bus only where one
// exists: the conformance test skips elsewhere, saying so.
package i2cdev
