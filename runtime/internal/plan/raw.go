package plan

import "encoding/json"

// raw encodes a state value for a call; absent values stay empty.
func raw(v any, present bool) (json.RawMessage, error) {
	if !present {
		return nil, nil
	}
	return json.Marshal(v)
}
