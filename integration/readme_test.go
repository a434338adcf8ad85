package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/galenadb/galena/integration/harness"
)

// TestReadmeQuickstart runs the README's quickstart as written: the shell
// block that starts three members (with the binary this run built, on free
// ports and in temporary directories instead of 7001-7003 and /tmp/gN),
// then every command of the console block after it, each of which must
// succeed and print what the README shows, unless its comment says the
// output will differ.
func TestReadmeQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("integration: starts real galena processes")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	quick := string(readme)
	if i := strings.Index(quick, "## Quickstart"); i >= 0 {
		quick = quick[i:]
	} else {
		t.Fatal("README has no Quickstart section")
	}
	setup, console := codeBlock(t, quick, "sh"), codeBlock(t, quick, "console")

	dir := t.TempDir()
	if err := os.Symlink(galenaBin, filepath.Join(dir, "galena")); err != nil {
		t.Fatal(err)
	}
	var remap []string // README text → this run's
	for i := 1; i <= 3; i++ {
		addr, err := harness.ClosedAddr()
		if err != nil {
			t.Fatal(err)
		}
		remap = append(remap, fmt.Sprintf("127.0.0.1:700%d", i), addr, fmt.Sprintf("/tmp/g%d", i), filepath.Join(dir, fmt.Sprintf("g%d", i)))
	}
	r := strings.NewReplacer(remap...)
	var script []string
	for _, line := range strings.Split(setup, "\n") {
		if !strings.HasPrefix(line, "go build ") { // the binary is this run's
			script = append(script, r.Replace(line))
		}
	}
	env := script[len(script)-1]
	if !strings.HasPrefix(env, "export GALENA_ENDPOINTS=") {
		t.Fatalf("the quickstart's setup does not end by exporting GALENA_ENDPOINTS: %q", env)
	}
	// The members run on after the script: its output goes to a file, not
	// to a pipe the test would wait on.
	outFile, err := os.Create(filepath.Join(dir, "setup.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer outFile.Close()
	start := exec.Command("bash", "-e", "-c", strings.Join(script, "\n"))
	start.Dir, start.Stdout, start.Stderr = dir, outFile, outFile
	start.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the members too: killed as a group
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // whatever the script started, before dir is removed
		syscall.Kill(-start.Process.Pid, syscall.SIGKILL)
		if err := waitGroupGone(start.Process.Pid); err != nil {
			t.Error(err)
		}
	})
	if err := start.Wait(); err != nil {
		out, _ := os.ReadFile(outFile.Name())
		t.Fatalf("the quickstart's setup: %v\n%s", err, out)
	}
	run := func(command string) (string, error) {
		c := exec.Command("bash", "-c", env+"\n"+command)
		c.Dir = dir
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		err := c.Run()
		return out.String(), err
	}
	if err := harness.WaitFor(time.Minute, func() error {
		out, err := run("./galena status")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}); err != nil {
		t.Fatalf("the quickstart's members did not become SYNCED: %v\nlogs:\n%s", err, logsOf(dir))
	}

	steps := regexp.MustCompile(`(?m)^\$ `).Split(console, -1)[1:]
	if len(steps) < 5 {
		t.Fatalf("the quickstart's console block has %d commands", len(steps))
	}
	for _, step := range steps {
		command, want, _ := strings.Cut(step, "\n")
		out, err := run(r.Replace(command))
		if err != nil {
			t.Fatalf("$ %s: %v\n%s", command, err, out)
		}
		if strings.Contains(command, "# (") { // the README says its output differs from run to run
			continue
		}
		if want = r.Replace(want); out != want {
			t.Errorf("$ %s printed\n%q\nthe README shows\n%q", command, out, want)
		}
	}
}

// codeBlock is the first fenced block of lang in md, without its fences.
func codeBlock(t *testing.T, md, lang string) string {
	t.Helper()
	open := "```" + lang + "\n"
	i := strings.Index(md, open)
	if i < 0 {
		t.Fatalf("no %s block", lang)
	}
	block := md[i+len(open):]
	j := strings.Index(block, "```\n")
	if j < 0 {
		t.Fatalf("the %s block does not end", lang)
	}
	return strings.TrimSuffix(block[:j], "\n")
}

// logsOf is the members' logs of the quickstart in dir.
func logsOf(dir string) string {
	var b strings.Builder
	for i := 1; i <= 3; i++ {
		data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("n%d.log", i)))
		fmt.Fprintf(&b, "n%d.log:\n%s\n", i, data)
	}
	return b.String()
}

// waitGroupGone waits until no process of process group pgid runs: a
// killed one has closed its files once it is a zombie, or gone.
func waitGroupGone(pgid int) error {
	return harness.WaitFor(time.Minute, func() error {
		stats, err := filepath.Glob("/proc/[0-9]*/stat")
		if err != nil {
			return err
		}
		for _, p := range stats {
			b, err := os.ReadFile(p)
			i := bytes.LastIndexByte(b, ')') // after the command's name: state, parent, group
			if err != nil || i < 0 {
				continue // gone meanwhile
			}
			if f := strings.Fields(string(b[i+1:])); len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
				return fmt.Errorf("%s: a process the quickstart started still runs after SIGKILL", p)
			}
		}
		return nil
	})
}
