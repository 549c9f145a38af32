package fleet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
)

// DefaultTLSPort is the broker port when a tls broker URL (ssl://, tls://,
// mqtts://) names none.
const DefaultTLSPort = "8883"

// SystemRoots, as [TLSFiles.CA], verifies the broker against the operating
// system's trusted roots instead of a CA file: for a broker whose
// certificate comes from a public authority.
const SystemRoots = "system"

// TLSFiles names the PEM files of one end of a TLS connection to the
// broker. Files are read at every connect, so a renewed certificate is used
// from the next reconnect on, without a restart.
//
// For a client ([DeviceOptions.TLS], [OperatorOptions.TLS]): CA verifies the
// broker; Cert and Key authenticate the client (with Mosquitto's
// use_identity_as_username, the certificate's common name is the username:
// the device id). For the embedded broker (devbroker.NewTLS): Cert and Key are
// the broker's, and CA, when set, is the authority every client must
// present a certificate from.
type TLSFiles struct {
	// CA is the PEM file of the certificate authority (one or more
	// certificates) trusted to sign the other end's certificate. A client
	// on a tls URL needs it; SystemRoots ("system") means the operating
	// system's roots instead.
	CA string `yaml:"ca" json:"ca"`
	// Cert is the PEM certificate (chain) of this end; Key its private key.
	// Both or neither.
	Cert string `yaml:"cert" json:"cert"`
	Key  string `yaml:"key" json:"key"`
	// ServerName, for a client, is the name the broker's certificate must
	// carry when it differs from the host in the broker URL (e.g. the URL
	// uses an IP address). Empty: the URL's host.
	ServerName string `yaml:"server_name" json:"server_name"`
}

// IsZero reports whether no file and no server name is set.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

// ClientConfig reads the files and returns the configuration of a client
// that verifies the broker (against CA, or the system roots) and, when
// Cert and Key are set, presents that certificate. host is the broker's
// host name, used when ServerName is empty.
func (f TLSFiles) ClientConfig(host string) (*tls.Config, error) {
	if f.CA == "" {
		return nil, errors.New("fleet: TLS: no CA file to verify the broker with; set the CA that signed the broker's certificate (ca), or \"" + SystemRoots + "\" for the system's trusted roots")
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if f.ServerName != "" {
		c.ServerName = f.ServerName
	}
	if f.CA != SystemRoots {
		pool, err := readPool(f.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	cert, err := f.keyPair("client")
	if err != nil {
		return nil, err
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c, nil
}

// ServerConfig reads the files and returns the configuration of a broker
// that presents Cert and, when CA is set, requires every client to present
// a certificate signed by CA.
func (f TLSFiles) ServerConfig() (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("fleet: broker TLS: the broker needs its certificate and key (cert and key)")
	}
	if f.ServerName != "" {
		return nil, errors.New("fleet: broker TLS: server_name is for clients; a broker's names are in its certificate")
	}
	cert, err := f.keyPair("broker")
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}
	switch f.CA {
	case "":
	case SystemRoots:
		return nil, errors.New("fleet: broker TLS: clients are verified against a CA file, not the system roots; set ca to the authority that signs device certificates")
	default:
		pool, err := readPool(f.CA)
		if err != nil {
			return nil, err
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

// keyPair loads Cert and Key; nil when neither is set.
func (f TLSFiles) keyPair(role string) (*tls.Certificate, error) {
	switch {
	case f.Cert == "" && f.Key == "":
		return nil, nil
	case f.Key == "":
		return nil, fmt.Errorf("fleet: TLS: %s certificate %s has no key; set the key file too", role, f.Cert)
	case f.Cert == "":
		return nil, fmt.Errorf("fleet: TLS: %s key %s has no certificate; set the certificate file too", role, f.Key)
	}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, fmt.Errorf("fleet: TLS: cannot read the %s certificate: %w; check the path and that this user may read it", role, err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, fmt.Errorf("fleet: TLS: cannot read the %s key: %w; check the path and that this user may read it", role, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("fleet: TLS: %s certificate %s with key %s: %w; both must be PEM, and the key must be the one the certificate was issued for", role, f.Cert, f.Key, err)
	}
	return &cert, nil
}

// readPool reads a PEM file of CA certificates.
func readPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet: TLS: cannot read the CA file: %w; check the path and that this user may read it", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("fleet: TLS: CA file %s holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the CA's certificate, not its key or a DER file", path)
	}
	return pool, nil
}

// Check reports whether the files suit broker, a broker URL: a tls URL
// (ssl://, tls://, mqtts://) needs a CA, a plain one takes no TLS files,
// and every file named must be readable PEM of the right kind. It reads the
// files once, so that a wrong file is reported at start, not at the first
// connect. [NewDevice] and [DialOperator] call it.
func (f TLSFiles) Check(broker string) error {
	u, err := brokerURL(broker)
	if err != nil {
		return err
	}
	return checkTLS(u, f)
}

// checkTLS is Check for a URL brokerURL returned.
func checkTLS(broker string, f TLSFiles) error {
	scheme, host, _ := strings.Cut(broker, "://")
	if scheme != "ssl" {
		if !f.IsZero() {
			return fmt.Errorf("fleet: TLS files are set but the broker address %s is plain TCP; use ssl://host:%s (or tls://, mqtts://), or drop the TLS files", broker, DefaultTLSPort)
		}
		return nil
	}
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		return fmt.Errorf("fleet: broker address %s: %w", broker, err)
	}
	_, err = f.ClientConfig(h)
	return err
}

// tlsDial wraps dial with a TLS handshake, reading files at every call.
func tlsDial(dial dialFunc, files TLSFiles) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		cfg, err := files.ClientConfig(host)
		if err != nil {
			return nil, newError(errTLS, err, "%v", err)
		}
		// Note whether the broker asked for a client certificate, to
		// explain a refusal that comes after the handshake.
		asked := new(atomic.Bool)
		var mine *tls.Certificate
		if len(cfg.Certificates) > 0 {
			mine = &cfg.Certificates[0]
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked.Store(true)
			if mine == nil {
				return new(tls.Certificate), nil // none: the broker decides
			}
			return mine, nil
		}
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		c := tls.Client(raw, cfg)
		if err := c.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, handshakeError(addr, cfg, files, asked.Load(), err)
		}
		return &verdictConn{Conn: c, files: files, asked: asked.Load()}, nil
	}
}

// handshakeError explains a failed handshake: what the broker's
// certificate had wrong, or that the broker refused ours.
func handshakeError(addr string, cfg *tls.Config, files TLSFiles, asked bool, err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	hint := "check that the broker speaks TLS on this port"
	switch {
	case errors.As(err, &unknown):
		if files.CA == SystemRoots {
			hint = "the broker's certificate is not signed by a root this system trusts; set the CA file that signed it"
		} else {
			hint = fmt.Sprintf("the broker's certificate is not signed by the CA in %s; use the CA that signed the broker's certificate", files.CA)
		}
	case errors.As(err, &host):
		hint = fmt.Sprintf("the broker's certificate is not for %q; put a name from its certificate in the broker URL, or set the TLS server name", cfg.ServerName)
	case errors.As(err, &invalid):
		hint = "the broker's certificate is expired, not yet valid or not for a server; renew it"
	case asked || isRemoteAlert(err):
		hint = refusedHint(files)
	}
	return newError(errTLS, err, "fleet: TLS handshake with broker %s: %v; %s", addr, err, hint)
}

// errTLS marks errors of the TLS layer, so that callers do not blame an
// unreachable broker for them.
var errTLS = errors.New("fleet: TLS")

// isRemoteAlert reports whether err is a TLS alert sent by the other end.
func isRemoteAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

func refusedHint(files TLSFiles) string {
	if files.Cert == "" {
		return "the broker refused the TLS connection: it requires a client certificate; set a certificate and key signed by the CA the broker trusts"
	}
	return fmt.Sprintf("the broker refused the client certificate %s: it must be signed by the CA the broker trusts (its cafile), be valid now, and be meant for client authentication", files.Cert)
}

// verdictConn explains a broker's refusal of the client certificate that
// arrives after the handshake: with TLS 1.3 the client finishes its
// handshake before the broker has checked the client's certificate, so the
// refusal shows up as the first write or read failing (an alert, or a bare
// reset: Mosquitto resets). Once the broker has sent something, it
// accepted the certificate and errors pass through unchanged.
type verdictConn struct {
	*tls.Conn
	files    TLSFiles
	asked    bool        // the broker asked for a client certificate
	accepted atomic.Bool // the broker sent data: it accepted us
}

func (c *verdictConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.accepted.Store(true)
	}
	return n, c.explain(err)
}

func (c *verdictConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	return n, c.explain(err)
}

func (c *verdictConn) explain(err error) error {
	if err == nil || c.accepted.Load() || !(c.asked || isRemoteAlert(err)) {
		return err
	}
	return newError(errTLS, err, "%v; %s", err, refusedHint(c.files))
}
