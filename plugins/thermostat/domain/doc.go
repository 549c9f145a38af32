// Package domain is the thermostat's HTN domain, shared by the thermostat
// plugin (version 0.1.0) and the testbench's thermostat fix (0.2.0, which
// adds the stuck-sensor recovery). A module's main registers it with
// Register from its init.
//
// "warm" expands into switching the heater on, waiting until the room is
// warm, and switching it off again; "cool" waits with the heater off. The
// sensor reports whole degrees, so a target is met within half a degree;
// a heating room is taken Overshoot (0.2 °C) past the target, so that it
// coasts a while before it needs heat again rather than flip at the
// rounding boundary.
//
// With Recovery, the sensor is also checked as it is read (a register
// written and read back: a latched TMP102 drops the write), /room/sensor
// says "ok" or "stuck", and a "recover" method power-cycles a stuck sensor
// through the GPIO line that supplies it (config sensor_power) before
// anything else.
package domain
