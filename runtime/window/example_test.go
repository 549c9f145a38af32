package window_test

import (
	"fmt"
	"time"

	"github.com/tern-iot/tern/runtime/window"
)

func Example() {
	w, err := window.Parse(window.Spec{Days: []string{"sat", "sun"}, From: "22:00", To: "06:00", Zone: "Europe/Berlin"})
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC) // a Saturday
	fmt.Println(w.Open(now))
	fmt.Println(w.Next(now).UTC()) // set a timer for this
	// Output:
	// false
	// 2026-03-07 21:00:00 +0000 UTC
}
