// Command relay-revb is relay 0.2.0, a release that works on most boards
// and fails on some: on a revision B board (its HAT EEPROM, a 24c02 at
// i2c1:0x50, says "rev-b") its sensor and jobs fail. A revision B device
// rolls it back after three failed calls in a row; the rollout scenario
// counts it failed and aborts the rollout.
package main

import "github.com/tern-iot/tern/testbench/modules/internal/revrelay"

func init() { revrelay.Register("0.2.0", true) }

func main() {}
