package boltstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tern-iot/tern/runtime/store"
	"github.com/tern-iot/tern/runtime/store/internal/boltstore"
	"github.com/tern-iot/tern/runtime/store/storetest"
)

var _ store.Store = (*boltstore.Store)(nil)

func open(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Suite{
		Open: open,
		AfterManyKeys: func(t *testing.T, dir string) {
			fi, err := os.Stat(filepath.Join(dir, boltstore.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if min := int64(storetest.ManyKeys * storetest.ManyValueSize); fi.Size() < min {
				t.Fatalf("%s holds %d bytes, less than the %d written", boltstore.FileName, fi.Size(), min)
			}
		},
	}.Run(t)
}

func TestOpenTwiceIsRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s2, err := boltstore.Open(dir)
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of an open store succeeded")
	}
	if !strings.Contains(err.Error(), "another agent has this store open") {
		t.Fatalf("second Open: %v, want an error that says the store is in use", err)
	}
}

func TestOpenCreatesDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := boltstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(filepath.Join(dir, boltstore.FileName)); err != nil {
		t.Fatal(err)
	}
}
