package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/tern-iot/tern/hal/sim"
	"github.com/tern-iot/tern/internal/wasmbuild"
	"github.com/tern-iot/tern/runtime"
	"github.com/tern-iot/tern/runtime/store/backend"
)

// An agent on a simulated board: the relay module, a target, and the agent
// switching the line until the board meets it.
func Example() {
	relay, err := wasmbuild.Cached("github.com/tern-iot/tern/plugins/relay")
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "tern-example")
	defer os.RemoveAll(dir)
	st, err := backend.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer st.Close()
	lines := sim.NewGPIO("GPIO17")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := runtime.New(ctx, runtime.Options{
		Store: st, GPIO: lines, CacheDir: sharedCache,
		Modules: []runtime.ModuleSpec{{
			Name: "relay", Wasm: relay,
			Grants: runtime.Grants{GPIO: []string{"GPIO17"}},
			Config: json.RawMessage(`{"lines":{"heater":"GPIO17"}}`),
		}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ran := make(chan struct{})
	go func() { a.Run(ctx); close(ran) }()
	defer func() { cancel(); <-ran; a.Close(context.Background()) }()
	if err := a.SetTarget(1, json.RawMessage(`{"relays":{"heater":true}}`)); err != nil {
		fmt.Println(err)
		return
	}
	for deadline := time.Now().Add(2 * time.Minute); !a.Status().Converged && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	s := a.Status()
	level, _ := lines.Level("GPIO17")
	fmt.Println(s.Converged, s.TargetVersion, string(s.State), level)
	// Output:
	// true 1 {"relays":{"heater":true}} High
}
