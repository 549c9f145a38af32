package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tern-iot/tern/boards"
	"github.com/tern-iot/tern/hal/serialdev"
	"github.com/tern-iot/tern/hal/sim"
)

// The sim section of ternd.yaml is the simulated world around a sim board
// (board: sim): a sim.BoardSpec, the format the testbench's agents use for
// their boards too. It lets a separate ternd process run against simulated
// devices, as the testbench's process agents do.
//
//	sim:
//	  i2c:
//	    - {at: i2c1:0x48, chip: tmp102, celsius: 18}
//	    - {at: i2c1:0x20, chip: pcf8574, pulled_low: [3]}
//	    - {at: i2c1:0x50, chip: 24c02, data: "serial=0042"}
//	  rooms:
//	    - {heater: GPIO17, sensor: i2c1:0x48, heat: 2, loss: 0.01, ambient: 15}
//	  serial:
//	    - {port: serial0, device: gps, lat: 52.52, lon: 13.40}

// simTick is the physics' time step.
const simTick = 50 * time.Millisecond

// validateSim says what is wrong with the sim section, all at once; board
// is the configured board's name.
func validateSim(s sim.BoardSpec, board string) []error {
	if s.IsZero() {
		return nil
	}
	if board != "sim" {
		return []error{fmt.Errorf("sim: simulated devices need board: sim (board is %q); remove the sim section or set board: sim", board)}
	}
	b, err := boards.Lookup("sim")
	if err != nil {
		return []error{fmt.Errorf("sim: %w", err)}
	}
	var errs []error
	for _, err := range s.Validate(b.Lines()) {
		errs = append(errs, fmt.Errorf("sim.%w", err))
	}
	if len(s.Buttons) > 0 {
		errs = append(errs, errors.New("sim.buttons: nobody presses a button on ternd's simulated board (the testbench presses its own boards' buttons); remove the section"))
	}
	return errs
}

// simHardware builds the sim board with what the sim section wires to it,
// and returns its physics, which the caller runs until ctx is done (nil
// when there is none), and a close for its serial devices.
func simHardware(b boards.Board, s sim.BoardSpec) (*Hardware, func(ctx context.Context), func() error, error) {
	sb, err := sim.NewBoard(s, b.Lines(), nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ternd: %w", err)
	}
	var physics func(ctx context.Context)
	if len(sb.Rooms()) > 0 {
		physics = func(ctx context.Context) { sb.Run(ctx, simTick) }
	}
	return &Hardware{GPIO: sb.GPIO, I2C: sb.I2C, Serial: serialdev.Opener{Devices: sb.Ports}}, physics, sb.Close, nil
}
