package sdk

import "github.com/tern-iot/tern/sdk/abi"

// The names below are the module ABI's, defined in package abi, which the
// host uses too: a module and ternd cannot disagree about them. They are
// repeated here so that a module imports one package. What only the host
// needs (Try, EncodeCall, DecodeTry, AppendState, Truncate, the job kinds
// and declarative answers) is in abi alone.

// ABIVersion is the version of the module ABI this SDK builds modules for
// (ABI.md); the host refuses a module built for another.
const ABIVersion = abi.ABIVersion

type (
	// Op is the change to a path that a job handles: Create, Update,
	// Delete or Any.
	Op = abi.Op
	// Call is the input of a job or sensor, as NewContext takes it.
	Call = abi.Call
	// TaskRef is one step of a method's expansion (Do, Again).
	TaskRef = abi.TaskRef
	// Value is a read-only, lazily decoded view of a JSON value
	// (Context.CurrentValue, TargetValue, Read).
	Value = abi.Value
	// Manifest is what a module declares (Describe); JobSpec and
	// SensorSpec are its entries.
	Manifest   = abi.Manifest
	JobSpec    = abi.JobSpec
	SensorSpec = abi.SensorSpec
	// Errno is a host function's error: hardware calls return one
	// (wrapped), to be compared with errors.Is.
	Errno = abi.Errno
)

// Operations a job can bind to.
const (
	Create = abi.Create // the path is absent in the state and present in the target
	Update = abi.Update // the path is present in both and differs
	Delete = abi.Delete // the path is present in the state and null in the target
	Any    = abi.Any    // all of the above
)

// Here, as a step's path, is the method's own path (Again).
const Here = abi.Here

// Host function errors (ABI.md, "Host functions").
const (
	ErrnoOK         = abi.ErrnoOK
	ErrnoNotGranted = abi.ErrnoNotGranted // the resource was not granted to this module
	ErrnoPlanning   = abi.ErrnoPlanning   // hardware access while planning (condition, effect)
	ErrnoNoLine     = abi.ErrnoNoLine     // the board has no such line or bus
	ErrnoIO         = abi.ErrnoIO         // the hardware reported an error
	ErrnoBadArg     = abi.ErrnoBadArg     // an argument was out of range or not UTF-8
	ErrnoNoDevice   = abi.ErrnoNoDevice   // no I2C device answered at the address (NACK)
	ErrnoRate       = abi.ErrnoRate       // past the rate the grant allows (GPIO writes); try later
	ErrnoNoState    = abi.ErrnoNoState    // the state cannot be read in this call (a sensor, configure)
)

// Bounds on what a module declares (ABI.md, "Limits"): a manifest over
// any of them is refused at load.
const (
	MaxManifestBytes    = abi.MaxManifestBytes
	MaxNameBytes        = abi.MaxNameBytes
	MaxVersionBytes     = abi.MaxVersionBytes
	MaxPathBytes        = abi.MaxPathBytes
	MaxDescriptionBytes = abi.MaxDescriptionBytes
	MaxJobs             = abi.MaxJobs
	MaxSensors          = abi.MaxSensors
	MaxResources        = abi.MaxResources
)
