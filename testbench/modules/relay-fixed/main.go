// Command relay-fixed is relay 0.2.1, the fix of relay-revb: it works on
// revision A and B boards alike. The rollout scenario releases it after
// 0.2.0's rollout was aborted, to every device.
package main

import "github.com/tern-iot/tern/testbench/modules/internal/revrelay"

func init() { revrelay.Register("0.2.1", false) }

func main() {}
