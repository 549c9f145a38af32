// Package i2c is the contract for I2C buses: a transaction to a device
// address, on a bus the board names ("i2c1"). Backends: hal/sim (simulated
// devices); the real /dev/i2c-N backend arrives with the hardware issue.
package i2c
