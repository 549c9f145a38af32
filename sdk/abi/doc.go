// Package abi is the module ABI's Go form: the types, constants and wire
// codec that a tern job module and the host share. It holds no
// implementation of either side and imports nothing of tern, so that ternd
// links the contract without the guest SDK, and the SDK without the host.
//
// sdk/ABI.md is the contract, for any language; this package follows it
// and ABIVersion names its version. It has:
//
//   - the manifest (Manifest, JobSpec, SensorSpec, Op, Kind, the
//     declarative answers ConditionAlways and EffectTarget) and its checks
//     (Manifest.Validate, the Max* bounds);
//   - the host function errors (Errno);
//   - the call and result frames, each side's half: the host encodes a
//     call (EncodeCall) and decodes results (DecodeTry, DecodeValue) and
//     answers state reads (AppendState); a module decodes a call
//     (DecodeCall into a Frame) and encodes results (EncodeTry,
//     EncodeValue, AppendError) and decodes state reads (DecodeState).
//     Both halves live here so that they cannot drift apart, and the
//     tests run one against the other;
//   - Value, a lazily decoded view of a value in its wire form, and its
//     decoding into Go values as encoding/json would.
//
// Module authors import package sdk, which repeats what a module uses
// (sdk.Update, sdk.TaskRef, sdk.Value, the Errno values …) under its own
// name. The host (runtime, ternd, tern) imports this package and never
// sdk; firmware's TestImportBoundaries keeps it so.
//
// The errors keep the "sdk:" prefix they had when this code was part of
// package sdk: they reach module authors, for whom the SDK is the name.
package abi
