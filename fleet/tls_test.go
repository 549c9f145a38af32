package fleet_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/fleettest"
	"github.com/tern-iot/tern/runtime/api"
)

// tlsBrokers start a broker that requires a client certificate from ca:
// Mosquitto with the shipped ACL and the certificate's common name as the
// username, and the embedded broker.
var tlsBrokers = map[string]func(testing.TB, *fleettest.CA) string{
	"mosquitto": func(t testing.TB, ca *fleettest.CA) string {
		acl, err := filepath.Abs(filepath.Join("..", "firmware", "mosquitto", "acl.conf"))
		if err != nil {
			t.Fatal(err)
		}
		return fleettest.MosquittoTLS(t, ca, acl)
	},
	"embedded": fleettest.EmbeddedTLS,
}

func tlsOperator(t *testing.T, url string, files fleet.TLSFiles) (*fleet.Operator, error) {
	t.Helper()
	op, err := fleet.DialOperator(t.Context(), fleet.OperatorOptions{
		Broker: url, TLS: files, Topics: topics, Logger: fleettest.Logger(t, "operator"), ConnectTimeout: 2 * time.Second,
	})
	if err == nil {
		t.Cleanup(op.Close)
	}
	return op, err
}

// TLS with client certificates end to end: the operator pushes a target
// over TLS, the device authenticated by its certificate (common name =
// device id, which the shipped ACL on Mosquitto takes as its username)
// gets it and reports its state.
func TestTLSClientCertificates(t *testing.T) {
	t.Parallel()
	for name, start := range tlsBrokers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ca := fleettest.NewCA(t, "fleet CA")
			url := start(t, ca)
			if !strings.HasPrefix(url, "ssl://") {
				t.Fatalf("TLS broker URL %q is not ssl://", url)
			}
			op, err := tlsOperator(t, url, ca.Client(t, "tern-operator"))
			if err != nil {
				t.Fatal(err)
			}
			pushed := fleet.TargetEnvelope{Version: 7, Target: json.RawMessage(`{"led":{"on":true}}`)}
			if err := op.PushTarget(t.Context(), "pi-001", pushed); err != nil {
				t.Fatal(err)
			}
			states, err := op.WatchStates(t.Context(), "pi-001")
			if err != nil {
				t.Fatal(err)
			}

			opts := testOptions(url, "pi-001")
			opts.TLS = ca.Client(t, "pi-001")
			d := newDevice(t, opts)
			run(t, d)
			if got := recv(t, d.Targets(), "the target over TLS"); got.Version != 7 {
				t.Fatalf("target over TLS: got version %d, want 7", got.Version)
			}
			if err := d.PublishState(t.Context(), api.Status{TargetVersion: 7, Phase: api.PhaseIdle}); err != nil {
				t.Fatal(err)
			}
			if r := recv(t, states, "pi-001's state over TLS"); r.Device != "pi-001" || r.TargetVersion != 7 {
				t.Fatalf("state over TLS: %+v", r)
			}
		})
	}
}

// A client without a certificate, with a certificate from another CA, or
// that cannot verify the broker does not get in, and the error says why.
func TestTLSRefusals(t *testing.T) {
	t.Parallel()
	for name, start := range tlsBrokers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ca := fleettest.NewCA(t, "fleet CA")
			other := fleettest.NewCA(t, "another CA")
			url := start(t, ca)

			strangerCert := other.Client(t, "pi-001")
			strangerCert.CA = ca.Cert // trusts the broker; the broker does not trust it
			wrongCA := ca.Client(t, "pi-001")
			wrongCA.CA = other.Cert
			wrongName := ca.Client(t, "pi-001")
			wrongName.ServerName = "broker.example"
			for _, tc := range []struct {
				what  string
				files fleet.TLSFiles
				want  string
			}{
				{"no client certificate", fleet.TLSFiles{CA: ca.Cert}, "it requires a client certificate"},
				{"a certificate from another CA", strangerCert, "refused the client certificate " + strangerCert.Cert},
				{"a broker signed by another CA", wrongCA, "not signed by the CA in " + other.Cert},
				{"a broker with another name", wrongName, `not for "broker.example"`},
				{"the system roots", fleet.TLSFiles{CA: fleet.SystemRoots}, "not signed by a root this system trusts"},
			} {
				_, err := tlsOperator(t, url, tc.files)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: got %v, want an error containing %q", tc.what, err, tc.want)
				} else if strings.Contains(err.Error(), "is it running") {
					t.Errorf("%s: %v: blames an unreachable broker for a TLS problem", tc.what, err)
				}
			}
		})
	}
}

// BenchmarkConnect measures an operator's connect (TCP, TLS handshake with
// client certificate when ssl, MQTT CONNECT/CONNACK) and disconnect, plain
// and TLS side by side, against the embedded broker on loopback.
func BenchmarkConnect(b *testing.B) {
	ca := fleettest.NewCA(b, "fleet CA")
	for name, setup := range map[string]func() (string, fleet.TLSFiles){
		"plain": func() (string, fleet.TLSFiles) { return fleettest.Embedded(b), fleet.TLSFiles{} },
		"tls":   func() (string, fleet.TLSFiles) { return fleettest.EmbeddedTLS(b, ca), ca.Client(b, "tern-operator") },
	} {
		b.Run(name, func(b *testing.B) {
			url, files := setup()
			for b.Loop() {
				op, err := fleet.DialOperator(b.Context(), fleet.OperatorOptions{Broker: url, TLS: files, Topics: topics})
				if err != nil {
					b.Fatal(err)
				}
				op.Close()
			}
		})
	}
}
