// Command supervisor is the benchmark's supervisor domain (PROBLEMS.md,
// supervisor): balena's supervisor in small, the domain Mahler was built
// for. Apps hold services; a service is a container on an image, and an
// image must be pulled before a container is created on it, which
// create_container learns by reading /images (Context.Read).
package main

import "github.com/tern-iot/tern/sdk"

const service = "/apps/:app/services/:svc"

func init() {
	sdk.Module("bench-supervisor", "1.0.0")
	sdk.Job("create_app", "/apps/:app", sdk.Create, sdk.Action{
		Condition: absent,
		Effect:    func(*sdk.Context) (any, error) { return map[string]any{"services": map[string]any{}}, nil },
		Run:       nop,
	})
	sdk.Job("pull", "/images/:image", sdk.Create, sdk.Action{
		Condition: absent,
		Effect:    func(*sdk.Context) (any, error) { return map[string]any{}, nil },
		Run:       nop,
	})
	// Pulling is only needed to create a service, so the service's create
	// leads to it.
	sdk.Method("fetch", service, sdk.Create, sdk.Expansion{
		Condition: func(c *sdk.Context) (bool, error) {
			if c.CurrentValue().Exists() {
				return false, nil
			}
			ok, err := imagePresent(c)
			return !ok, err
		},
		Expand: func(c *sdk.Context) ([]sdk.TaskRef, error) {
			img, _ := c.TargetValue().Get("image").Str()
			return []sdk.TaskRef{sdk.Do("pull", "/images/"+sdk.Escape(img))}, nil
		},
	})
	sdk.Job("create_container", service, sdk.Create, sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			if c.CurrentValue().Exists() {
				return false, nil
			}
			return imagePresent(c)
		},
		Effect: func(c *sdk.Context) (any, error) {
			img, _ := c.TargetValue().Get("image").Str()
			return map[string]any{"image": img, "status": "created"}, nil
		},
		Run: nop,
	})
	sdk.Job("start_container", service, sdk.Update, sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			cur, tgt := c.CurrentValue(), c.TargetValue()
			status := str(cur, "status")
			return (status == "created" || status == "stopped") &&
				str(cur, "image") == str(tgt, "image") && str(tgt, "status") == "running", nil
		},
		Effect: withStatus("running"),
		Run:    nop,
	})
	// stop_container and remove_container serve a service's update and
	// delete, and the steps of uninstall_app, whose target is null.
	sdk.Job("stop_container", service, sdk.Any, sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			cur, tgt := c.CurrentValue(), c.TargetValue()
			return str(cur, "status") == "running" &&
				(gone(tgt) || str(tgt, "image") != str(cur, "image") || str(tgt, "status") != "running"), nil
		},
		Effect: withStatus("stopped"),
		Run:    nop,
	})
	sdk.Job("remove_container", service, sdk.Any, sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			cur, tgt := c.CurrentValue(), c.TargetValue()
			return cur.Exists() && str(cur, "status") != "running" &&
				(gone(tgt) || str(tgt, "image") != str(cur, "image")), nil
		},
		Effect: remove,
		Run:    nop,
	})
	sdk.Job("remove_app", "/apps/:app", sdk.Delete, sdk.Action{
		Condition: func(c *sdk.Context) (bool, error) {
			cur := c.CurrentValue()
			return cur.Exists() && cur.Get("services").Len() == 0, nil
		},
		Effect: remove,
		Run:    nop,
	})
	// uninstall_app stops what runs, removes every container, then the app.
	sdk.Method("uninstall_app", "/apps/:app", sdk.Delete, sdk.Expansion{
		Condition: func(c *sdk.Context) (bool, error) { return c.CurrentValue().Exists(), nil },
		Expand: func(c *sdk.Context) ([]sdk.TaskRef, error) {
			svcs := c.CurrentValue().Get("services")
			names := svcs.Keys()
			steps := make([]sdk.TaskRef, 0, 2*len(names)+1)
			for _, n := range names {
				if str(svcs.Get(n), "status") == "running" {
					steps = append(steps, sdk.Do("stop_container", c.Path()+"/services/"+sdk.Escape(n)).WithTarget(nil))
				}
			}
			for _, n := range names {
				steps = append(steps, sdk.Do("remove_container", c.Path()+"/services/"+sdk.Escape(n)).WithTarget(nil))
			}
			return append(steps, sdk.Do("remove_app", c.Path()).WithTarget(nil)), nil
		},
	})
}

// imagePresent reports whether the image the target names is in /images.
func imagePresent(c *sdk.Context) (bool, error) {
	img, ok := c.TargetValue().Get("image").Str()
	if !ok {
		return false, nil
	}
	v, err := c.Read("/images/" + sdk.Escape(img))
	return v.Exists(), err
}

// withStatus is the effect that sets a service's status, keeping the rest.
func withStatus(status string) func(*sdk.Context) (any, error) {
	return func(c *sdk.Context) (any, error) {
		var s map[string]any
		if err := c.CurrentValue().Decode(&s); err != nil {
			return nil, err
		}
		s["status"] = status
		return s, nil
	}
}

func str(v sdk.Value, key string) string {
	s, _ := v.Get(key).Str()
	return s
}

// gone: the target is to delete (null), or names nothing here.
func gone(tgt sdk.Value) bool { return !tgt.Exists() || tgt.IsNull() }

func absent(c *sdk.Context) (bool, error) { return !c.CurrentValue().Exists(), nil }

func remove(*sdk.Context) (any, error) { return nil, nil }

func nop(*sdk.Context) error { return nil }

func main() {}
