package fleettest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/fleet/devbroker"
)

// CA is a certificate authority made for one test: it issues broker and
// client certificates, written as PEM files to the test's temporary
// directory. Nothing is committed to the repository.
type CA struct {
	// Cert is the path of the CA's certificate (PEM): the file brokers
	// and clients verify the other end with.
	Cert string

	name string
	cert *x509.Certificate
	key  crypto.Signer
	dir  string
}

// NewCA makes a certificate authority whose common name is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("fleettest: create CA %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("fleettest: parse CA %s: %v", name, err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "ca.pem")
	writePEM(t, path, "CERTIFICATE", der)
	return &CA{Cert: path, name: name, cert: cert, key: key, dir: dir}
}

// Server issues a broker certificate for 127.0.0.1, ::1 and localhost.
// The files it returns suit [fleet.NewTLSBroker] and Mosquitto's
// listener: CA is this CA (it verifies clients), Cert and Key the broker's.
func (ca *CA) Server(t testing.TB) fleet.TLSFiles {
	t.Helper()
	return ca.issue(t, "broker", &x509.Certificate{
		Subject:     pkix.Name{CommonName: "localhost"},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// Client issues a client certificate whose common name is cn (a device
// id, or the operator's username). The files it returns are what a client
// uses: CA is this CA (it verifies a broker whose certificate came from
// Server), Cert and Key the client's.
func (ca *CA) Client(t testing.TB, cn string) fleet.TLSFiles {
	t.Helper()
	return ca.issue(t, "client-"+cn, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// issue signs tmpl; it is safe for concurrent use (files carry the
// serial number in their names).
func (ca *CA) issue(t testing.TB, name string, tmpl *x509.Certificate) fleet.TLSFiles {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("fleettest: serial number: %v", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatalf("fleettest: CA %s: issue %s: %v", ca.name, name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("fleettest: CA %s: key of %s: %v", ca.name, name, err)
	}
	f := fleet.TLSFiles{
		CA:   ca.Cert,
		Cert: filepath.Join(ca.dir, fmt.Sprintf("%s-%x.pem", name, serial)),
		Key:  filepath.Join(ca.dir, fmt.Sprintf("%s-%x.key", name, serial)),
	}
	writePEM(t, f.Cert, "CERTIFICATE", der)
	writePEM(t, f.Key, "PRIVATE KEY", keyDER)
	return f
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("fleettest: generate key: %v", err)
	}
	return key
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatalf("fleettest: write %s: %v", path, err)
	}
}

// EmbeddedTLS starts the embedded broker ([fleet.NewTLSBroker]) on a free
// port of 127.0.0.1 with a certificate from ca, requiring every client to
// present a certificate from ca, and returns its URL, ssl://127.0.0.1:port.
func EmbeddedTLS(t testing.TB, ca *CA) string {
	t.Helper()
	log := new(LogBuffer)
	b, err := devbroker.NewTLS("127.0.0.1:0", ca.Server(t), slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, b, log, "embedded TLS broker")
}

// MosquittoTLS starts mosquitto with a TLS listener on a free port of
// 127.0.0.1: its certificate comes from ca, every client must present a
// certificate from ca (require_certificate true), and the certificate's
// common name is the client's username (use_identity_as_username true),
// which acl, the path of an acl_file, applies to. An empty acl allows
// every authenticated client everything. It returns the URL,
// ssl://127.0.0.1:port.
func MosquittoTLS(t testing.TB, ca *CA, acl string) string {
	t.Helper()
	srv := ca.Server(t)
	extra := fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuse_identity_as_username true\nallow_anonymous false\n",
		srv.CA, srv.Cert, srv.Key)
	if acl != "" {
		extra += "acl_file " + acl + "\n"
	}
	var err error
	for range 3 {
		var url string
		if url, err = startMosquittoWith(t, mosquittoBinary(t), FreeAddr(t), "ssl", extra); err == nil {
			return url
		}
	}
	t.Fatal(err)
	return ""
}
