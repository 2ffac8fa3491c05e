package store_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"roombox/appliance/store"
)

// The power-loss writer: this test binary, re-executed with these variables set.
const (
	writerEnv      = "GO_WANT_HELPER_PROCESS" // "1": be the writer instead of running tests
	writerDirEnv   = "ROOMBOX_POWERLOSS_DIR"
	writerStartEnv = "ROOMBOX_POWERLOSS_START"
	seedEnv        = "ROOMBOX_POWERLOSS_SEED" // replays a logged seed's kill delays
)

func TestMain(m *testing.M) {
	if os.Getenv(writerEnv) == "1" {
		powerLossWriter()
	}
	os.Exit(m.Run())
}

// lossState is the n-th state the writer saves. Every field changes with n in its own
// rhythm, so a file mixing two states is told from both.
func lossState(n int) store.SavedState {
	return store.SavedState{Version: 1, MicMuted: n%2 == 1, CameraOff: n%3 == 0, SpeakerMuted: n%5 == 0, Volume: &n}
}

// powerLossWriter saves lossState(start), lossState(start+1), ... through the real Store
// and reports each on stdout ("n\n", one write, atomic on a pipe) once SaveState returned,
// before the next save starts. It runs until it is killed.
func powerLossWriter() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "power-loss writer:", err)
		os.Exit(2)
	}
	start, err := strconv.Atoi(os.Getenv(writerStartEnv))
	if err != nil {
		fail(err)
	}
	s, err := store.Open(os.Getenv(writerDirEnv))
	if err != nil {
		fail(err)
	}
	if _, err := os.Stdout.WriteString("ready\n"); err != nil {
		fail(err)
	}
	for n := start; ; n++ {
		if err := s.SaveState(lossState(n)); err != nil {
			fail(err)
		}
		if _, err := os.Stdout.WriteString(strconv.Itoa(n) + "\n"); err != nil {
			fail(err)
		}
	}
}

// TestStorePowerLoss kills a writer of state.json with SIGKILL at random points, 1000
// times; after each kill the state read through a fresh Store is exactly the last state
// the writer reported saved or the next one, never an error or a mix, and no temporary
// file survives the next OpenStore.
//
// SIGKILL stops the writer between any two instructions, so this proves the order of the
// steps as the kernel sees them (temp file, rename, last good link) leaves every
// intermediate directory state readable and cleanable. It does not drop the page cache as
// a power cut does: that the data reach the flash before the rename rests on the fsyncs,
// which this test cannot observe.
func TestStorePowerLoss(t *testing.T) {
	const kills = 1000
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", seedEnv, err)
		}
	}
	t.Logf("seed %d (rerun with %s=%d)", seed, seedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, seed))

	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveState(lossState(0)); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	cur := 0 // the state on disk
	var newer, temps, writes int
	for round := range kills {
		// A save takes a few milliseconds here (two fsyncs): kills land at every step of the
		// first save or two of each writer.
		delay := time.Duration(rng.Int64N(int64(4 * time.Millisecond)))
		last, left := killWriter(t, dir, cur+1, delay)
		if last < 0 {
			last = cur // nothing reported: the previous state is the last one known saved
		}
		writes += last - cur
		temps += left

		s, err := store.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.LoadState()
		if err != nil {
			t.Fatalf("kill %d: LoadState: %v", round, err)
		}
		switch {
		case sameState(st, lossState(last)):
			cur = last
		case sameState(st, lossState(last+1)):
			cur, newer = last+1, newer+1
		default:
			t.Fatalf("kill %d: state.json holds %s, want state %d or %d, the last reported saved or the next", round, stateString(st), last, last+1)
		}
		checkPowerLossDir(t, dir, cur)
	}
	t.Logf("%d kills in %v: %d states saved; %d times the file was one newer than the last report; %d temporary files left by the kills, all removed by the next OpenStore",
		kills, time.Since(began).Round(time.Millisecond), writes, newer, temps)
}

// killWriter starts a writer saving from start, kills it with SIGKILL delay after it is
// ready, and returns the last state it reported saved (-1 if none) and how many temporary
// files it left.
func killWriter(t *testing.T, dir string, start int, delay time.Duration) (last, temps int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0])
	cmd.Env = append(os.Environ(), writerEnv+"=1", writerDirEnv+"="+dir, writerStartEnv+"="+strconv.Itoa(start))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("writer did not start: %q, %v; stderr: %s", line, err, stderr.Bytes())
	}
	select {
	case <-time.After(delay):
	case <-t.Context().Done():
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Everything reported before the kill is in the pipe; a line cut short was not reported.
	reports, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("writer ended with %v, not by SIGKILL; stderr: %s", err, stderr.Bytes())
	}
	last = -1
	if i := bytes.LastIndexByte(reports, '\n'); i >= 0 {
		lines := strings.Split(string(reports[:i]), "\n")
		if last, err = strconv.Atoi(lines[len(lines)-1]); err != nil {
			t.Fatalf("writer report %q: %v", lines[len(lines)-1], err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			temps++
		}
	}
	return last, temps
}

// checkPowerLossDir checks that dir holds state.json and at most its last good copy, which
// is state cur or the one before it.
func checkPowerLossDir(t *testing.T, dir string, cur int) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{store.StateFile, store.StateFile + store.LastGoodSuffix}
	if !slices.Equal(names, want) && !(cur == 0 && slices.Equal(names, want[:1])) {
		t.Fatalf("state dir holds %q, want %q", names, want)
	}
	if len(names) == 1 {
		return
	}
	data, err := os.ReadFile(filepath.Join(dir, want[1]))
	if err != nil {
		t.Fatal(err)
	}
	var good store.SavedState
	if err := json.Unmarshal(data, &good); err != nil {
		t.Fatalf("last good copy %q: %v", data, err)
	}
	if !sameState(good, lossState(cur)) && !sameState(good, lossState(cur-1)) {
		t.Fatalf("last good copy holds %s, want state %d or %d", stateString(good), cur, cur-1)
	}
}

// sameState compares states by their JSON, the form the store keeps.
func sameState(a, b store.SavedState) bool { return stateString(a) == stateString(b) }

func stateString(st store.SavedState) string {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Sprintf("%+v", st)
	}
	return string(data)
}
