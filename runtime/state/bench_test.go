package state

import (
	"fmt"
	"testing"
)

// benchDoc returns a state of about 100 leaves shaped like a device's:
// 10 rooms of 8 scalar leaves and an array, plus 10 relays; and a target
// naming about half of it, met except for one leaf.
func benchDoc() (state, target any) {
	rooms, troom := map[string]any{}, map[string]any{}
	for i := range 10 {
		name := fmt.Sprintf("room%02d", i)
		rooms[name] = map[string]any{
			"setpoint": 21.0, "temperature": 20.5, "humidity": 40.0, "heater": true,
			"fan": false, "mode": "auto", "label": name, "window": "closed",
			"sensors": []any{"t1", "t2"},
		}
		troom[name] = map[string]any{"setpoint": 21.0, "heater": true, "mode": "auto", "sensors": []any{"t1", "t2"}, "stale": nil}
	}
	relays, trelays := map[string]any{}, map[string]any{}
	for i := range 10 {
		name := fmt.Sprintf("relay%02d", i)
		relays[name] = map[string]any{"on": i%2 == 0}
		trelays[name] = map[string]any{"on": i%2 == 0}
	}
	trelays["relay09"] = map[string]any{"on": true} // the one unmet leaf
	return map[string]any{"rooms": rooms, "relays": relays, "version": "1.2.3"},
		map[string]any{"rooms": troom, "relays": trelays}
}

func BenchmarkSatisfies(b *testing.B) {
	state, target := benchDoc()
	b.ReportAllocs()
	for b.Loop() {
		if Satisfies(state, target) {
			b.Fatal("target unexpectedly met")
		}
	}
}

func BenchmarkUnsatisfied(b *testing.B) {
	state, target := benchDoc()
	b.ReportAllocs()
	for b.Loop() {
		if len(Unsatisfied(state, target)) != 1 {
			b.Fatal("want one unmet leaf")
		}
	}
}

func BenchmarkHash(b *testing.B) {
	state, _ := benchDoc()
	b.ReportAllocs()
	for b.Loop() {
		Hash(state)
	}
}

func BenchmarkEqual(b *testing.B) {
	state, _ := benchDoc()
	other := Clone(state)
	b.ReportAllocs()
	for b.Loop() {
		if !Equal(state, other) {
			b.Fatal("clone differs")
		}
	}
}
