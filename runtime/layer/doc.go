// Package layer is conditional target layers: parts of a target that
// apply only while a time window is open ([window.Window]) or when facts
// the device knows about itself match (its board, its groups, facts from
// its configuration). A device evaluates them by its own clock, offline
// too, and pursues the effective target: the combined target with every
// active layer laid over it in order, the way group and device targets
// combine (objects key by key; anything else, null included, replaces;
// a null then means "must not be there").
//
// The wire form is a JSON array in a target envelope's "layers" field
// (docs/mqtt.md); Parse reads and bounds it. Layers of the scopes a device
// combines (its groups, then itself) are concatenated in the same order,
// so a device's layer has the last word over a group's, and a later layer
// over an earlier one of the same scope.
package layer
