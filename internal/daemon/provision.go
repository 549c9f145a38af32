package daemon

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tern-iot/tern/fleet"
	"github.com/tern-iot/tern/internal/atomicfile"
)

// BootFiles are where first-boot provisioning looks for its file, in
// order, relative to the root: the boot partition as Raspberry Pi OS mounts
// it (bookworm and later, then earlier releases).
var BootFiles = []string{"boot/firmware/tern.yaml", "boot/tern.yaml"}

// ProvisionResult says what Provision did.
type ProvisionResult struct {
	From    string   // the boot file applied, "" if none was found
	Config  string   // the configuration written
	Written []string // the TLS files written
	Removed []string // the files removed from the boot partition
}

// Provision applies a first-boot file: a ternd.yaml (same fields) dropped
// on the boot partition, whose tls ca, cert and key may be PEM inline or
// names of files next to it. Under root it writes etc/tern/ternd.yaml (the
// fields of the boot file over those of the installed one) and
// etc/tern/tls/*.pem, then removes the boot file and the key file next to
// it, leaving tern.yaml.applied with what was applied but no secret: the
// FAT boot partition is readable by anyone with the SD card. It does
// nothing when there is no boot file. A boot file that would not make a
// valid configuration is left in place and nothing is written.
func Provision(root string) (ProvisionResult, error) {
	var res ProvisionResult
	var from string
	for _, f := range BootFiles {
		if p := filepath.Join(root, f); fileExists(p) {
			from = p
			break
		}
	}
	if from == "" {
		return res, nil
	}
	res.From = from
	raw, err := os.ReadFile(from)
	if err != nil {
		return res, fmt.Errorf("ternd provision: %w", err)
	}
	var boot map[string]any
	if err := yaml.Unmarshal(raw, &boot); err != nil || boot == nil {
		return res, fmt.Errorf("ternd provision: %s is not a YAML mapping of ternd.yaml fields (%v); fix it and reboot", from, err)
	}
	etc := filepath.Join(root, "etc/tern")
	cfgPath := filepath.Join(etc, "ternd.yaml")
	merged := map[string]any{}
	if b, err := os.ReadFile(cfgPath); err == nil {
		if err := yaml.Unmarshal(b, &merged); err != nil || merged == nil {
			merged = map[string]any{} // a broken installed file: the boot file replaces it
		}
	}
	for k, v := range boot {
		merged[k] = v
	}

	// TLS material: inline PEM or files beside the boot file.
	var pems []*pem
	if tls, ok := boot["tls"].(map[string]any); ok {
		for _, p := range []*pem{{field: "ca", file: "ca.pem", mode: 0o644}, {field: "cert", file: "cert.pem", mode: 0o644}, {field: "key", file: "key.pem", mode: 0o640}} {
			v, _ := tls[p.field].(string)
			switch {
			case v == "" || v == "system":
				continue
			case strings.Contains(v, "-----BEGIN "):
				p.data = []byte(strings.TrimSpace(v) + "\n")
			default:
				src := v
				if !filepath.IsAbs(src) {
					src = filepath.Join(filepath.Dir(from), src)
				}
				if p.data, err = os.ReadFile(src); err != nil {
					return res, fmt.Errorf("ternd provision: %s: tls.%s: %w; put the PEM inline or the file next to %s", from, p.field, err, filepath.Base(from))
				}
				p.src = src
			}
			if !strings.Contains(string(p.data), "-----BEGIN ") {
				return res, fmt.Errorf("ternd provision: %s: tls.%s is not PEM (no -----BEGIN line)", from, p.field)
			}
			tls[p.field] = "/etc/tern/tls/" + p.file
			pems = append(pems, p)
		}
		merged["tls"] = tls
	}

	out, err := yaml.Marshal(merged)
	if err != nil {
		return res, fmt.Errorf("ternd provision: %w", err)
	}
	var check Config
	if err := yaml.Unmarshal(out, &check); err != nil {
		return res, fmt.Errorf("ternd provision: %s: %w; fix it and reboot", from, err)
	}
	for _, b := range check.brokers() {
		if strings.HasPrefix(b, "ssl://") && check.TLS.CA == "" {
			return res, fmt.Errorf("ternd provision: %s: broker %s needs tls: ca (PEM inline, a file next to it, or system); fix it and reboot", from, b)
		}
	}
	// The TLS files are not written yet (their form was checked above):
	// check the rest.
	check.TLS = fleet.TLSFiles{}
	check.Broker = strings.Replace(check.Broker, "ssl://", "tcp://", 1)
	for i, b := range check.Brokers {
		check.Brokers[i] = strings.Replace(b, "ssl://", "tcp://", 1)
	}
	if err := check.withDefaults().Validate(); err != nil {
		return res, fmt.Errorf("ternd provision: %s does not make a valid configuration: %w; fix it and reboot", from, err)
	}

	// The files go to group tern (ternd's), when there is one and this
	// runs as root, as provisioning at boot does.
	gid := -1
	if g, err := user.LookupGroup("tern"); err == nil && os.Geteuid() == 0 {
		gid, _ = strconv.Atoi(g.Gid)
	}
	tlsDir := filepath.Join(etc, "tls")
	if len(pems) > 0 {
		if err := os.MkdirAll(tlsDir, 0o750); err != nil {
			return res, fmt.Errorf("ternd provision: %w", err)
		}
		if gid >= 0 {
			if err := os.Chown(tlsDir, -1, gid); err != nil {
				return res, fmt.Errorf("ternd provision: %w", err)
			}
		}
	}
	for _, p := range pems {
		dst := filepath.Join(tlsDir, p.file)
		if err := atomicfile.WriteGroup(dst, p.data, p.mode, gid); err != nil {
			return res, fmt.Errorf("ternd provision: %w", err)
		}
		res.Written = append(res.Written, dst)
	}
	header := fmt.Sprintf("# Written by ternd provision from %s on %s.\n", filepath.Base(from), time.Now().UTC().Format(time.RFC3339))
	if err := atomicfile.WriteGroup(cfgPath, append([]byte(header), out...), 0o640, gid); err != nil {
		return res, fmt.Errorf("ternd provision: %w", err)
	}
	res.Config = cfgPath

	// Leave no secret on the boot partition.
	summary := fmt.Sprintf("# tern first-boot file applied on %s: written /etc/tern/ternd.yaml%s.\n# Secrets (key, password) removed from the boot partition.\n",
		time.Now().UTC().Format(time.RFC3339), tlsNote(pems))
	for _, k := range []string{"device", "fleet", "broker"} {
		if v, ok := boot[k]; ok {
			summary += fmt.Sprintf("%s: %v\n", k, v)
		}
	}
	if err := atomicfile.WriteGroup(from+".applied", []byte(summary), 0o644, -1); err != nil {
		return res, fmt.Errorf("ternd provision: %w", err)
	}
	for _, p := range pems {
		if p.field == "key" && p.src != "" {
			if err := os.Remove(p.src); err == nil {
				res.Removed = append(res.Removed, p.src)
			}
		}
	}
	if err := os.Remove(from); err != nil {
		return res, fmt.Errorf("ternd provision: applied, but cannot remove %s (it holds secrets): %w", from, err)
	}
	res.Removed = append(res.Removed, from)
	return res, nil
}

// pem is one TLS file of a first-boot file.
type pem struct {
	field, file string
	mode        os.FileMode
	data        []byte
	src         string // the file beside the boot file it came from, if any
}

func tlsNote(pems []*pem) string {
	if len(pems) == 0 {
		return ""
	}
	var names []string
	for _, p := range pems {
		names = append(names, p.file)
	}
	return " and /etc/tern/tls/{" + strings.Join(names, ",") + "}"
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
