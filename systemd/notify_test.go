package systemd

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"roombox/internal/testkit/notifytest"
	"roombox/internal/testkit/roomboxtest"
)

// The real binary, started with a notify socket and a watchdog as systemd starts it, says
// its state and READY=1 once its LocalAPI answers, pets the watchdog every half interval,
// and says STOPPING=1 on SIGTERM.
func TestBinaryNotifies(t *testing.T) {
	const watchdog = 400 * time.Millisecond
	bin := roomboxtest.Binary(t)
	sock := notifytest.Listen(t)
	dir := roomboxtest.StateDir(t)
	cmd := exec.Command(bin, roomboxtest.RunArgs(dir)...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.Path, "WATCHDOG_USEC="+strconv.FormatInt(watchdog.Microseconds(), 10))
	d := roomboxtest.StartCmd(t, cmd, dir)

	before := sock.Await(t, "READY=1", 20*time.Second)
	if notifytest.Count(before, "STATUS=unprovisioned") != 1 {
		t.Fatalf("before READY=1: %q; want STATUS=unprovisioned once", before)
	}
	if st := roomboxtest.MustStatus(t, bin, dir); st.State != "unprovisioned" {
		t.Fatalf("state %q after READY=1, want unprovisioned", st.State)
	}
	if pets := sock.Collect(4 * watchdog); notifytest.Count(pets, "WATCHDOG=1") < 5 {
		t.Fatalf("in %v with WATCHDOG_USEC=%v: %q; want >= 5 WATCHDOG=1", 4*watchdog, watchdog, pets)
	}
	d.Stop(t)
	sock.Await(t, "STOPPING=1", time.Second)
}
