package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/thumbd/thumbd/internal/app"
	"github.com/thumbd/thumbd/internal/s3test"
)

// The container packaging lives at the repository root; these tests read
// it as docker and compose would and check it against the server's own
// configuration loader.

const (
	composeFile    = "../../docker-compose.yml"
	dockerfilePath = "../../Dockerfile"
	imageBinary    = "/usr/local/bin/thumbd"
)

// composeProject is the part of a compose file these tests look at.
type composeProject struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       any                          `yaml:"build"`
	Entrypoint  []string                     `yaml:"entrypoint"`
	Command     []string                     `yaml:"command"`
	Ports       []any                        `yaml:"ports"` // short "ip:host:container" or long {published, target}
	Environment map[string]string            `yaml:"environment"`
	Healthcheck *composeHealthcheck          `yaml:"healthcheck"`
	DependsOn   map[string]map[string]string `yaml:"depends_on"`
	Restart     string                       `yaml:"restart"`
	Profiles    []string                     `yaml:"profiles"`
	Volumes     []string                     `yaml:"volumes"`
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

// interpolate does compose's variable substitution for the forms the file
// uses: ${VAR:-default}, ${VAR} and $$ (a literal $). It fails the test on
// any other use of $, which compose would read differently.
func interpolate(t *testing.T, s string, env map[string]string) string {
	t.Helper()
	re := regexp.MustCompile(`\$\$|\$\{([A-Z0-9_]+)(:-([^}$]*))?\}|\$`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := re.FindStringSubmatch(m)
		if sub[1] == "" {
			t.Fatalf("compose file: a bare $ in %q (write $$ for a literal $)", s)
		}
		if v := env[sub[1]]; v != "" {
			return v
		}
		return sub[3]
	})
}

// loadCompose reads docker-compose.yml, interpolated with env as the
// shell's variables.
func loadCompose(t *testing.T, env map[string]string) composeProject {
	t.Helper()
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	interpolateNode(t, &doc, env)
	var p composeProject
	if err := doc.Decode(&p); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// interpolateNode interpolates every scalar value (not keys, as compose).
func interpolateNode(t *testing.T, n *yaml.Node, env map[string]string) {
	switch n.Kind {
	case yaml.ScalarNode:
		n.Value = interpolate(t, n.Value, env)
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			interpolateNode(t, n.Content[i], env)
		}
	default:
		for _, c := range n.Content {
			interpolateNode(t, c, env)
		}
	}
}

// portMappings renders a service's ports as "ip:published:target" whatever
// syntax they are written in (compose v1 `config` prints the short one,
// v2 the long one).
func portMappings(t *testing.T, s composeService) []string {
	t.Helper()
	var out []string
	for _, p := range s.Ports {
		switch p := p.(type) {
		case string:
			out = append(out, strings.TrimSuffix(p, "/tcp"))
		case map[string]any:
			out = append(out, fmt.Sprintf("%v:%v:%v", p["host_ip"], p["published"], p["target"]))
		default:
			t.Fatalf("port %#v: unexpected syntax", p)
		}
	}
	return out
}

// composeEnvConfig loads thumbd's configuration from a service's
// environment, as the container would.
func composeEnvConfig(t *testing.T, s composeService) app.Config {
	t.Helper()
	cfg, err := app.LoadConfig(nil, func(k string) string { return s.Environment[k] }, os.Stderr)
	if err != nil {
		t.Fatalf("thumbd's compose environment does not load: %v", err)
	}
	return cfg
}

func TestComposePortsAndURL(t *testing.T) {
	tests := []struct {
		name                     string
		env                      map[string]string
		thumbdPort, s3Port, base string
	}{
		{"defaults", nil, "127.0.0.1:8080:8080", "127.0.0.1:7070:7070", "http://localhost:8080"},
		{"THUMBD_PORT", map[string]string{"THUMBD_PORT": "18080"}, "127.0.0.1:18080:8080", "127.0.0.1:7070:7070", "http://localhost:18080"},
		{"every variable", map[string]string{"THUMBD_PORT": "18080", "THUMBD_S3_PORT": "17070", "THUMBD_BIND": "0.0.0.0", "THUMBD_PUBLIC_HOST": "thumbs.lan"},
			"0.0.0.0:18080:8080", "0.0.0.0:17070:7070", "http://thumbs.lan:18080"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := loadCompose(t, tc.env)
			thumbd, s3 := p.Services["thumbd"], p.Services["s3"]
			if got := portMappings(t, thumbd); !slices.Equal(got, []string{tc.thumbdPort}) {
				t.Errorf("thumbd ports = %q, want [%q]", got, tc.thumbdPort)
			}
			if got := portMappings(t, s3); !slices.Equal(got, []string{tc.s3Port}) {
				t.Errorf("s3 ports = %q, want [%q]", got, tc.s3Port)
			}
			cfg := composeEnvConfig(t, thumbd)
			if cfg.PublicURL != tc.base {
				t.Errorf("thumbd's public URL = %q, want %q", cfg.PublicURL, tc.base)
			}
		})
	}
}

func TestComposeThumbdSettings(t *testing.T) {
	p := loadCompose(t, nil)
	thumbd := p.Services["thumbd"]
	cfg := composeEnvConfig(t, thumbd)
	// Compose reaches the S3 service at a private address: thumbd must be
	// told explicitly that private networks are fine.
	if !cfg.AllowPrivateNetworks {
		t.Errorf("compose does not turn on private networks for thumbd (environment %v)", thumbd.Environment)
	}
	if !slices.Contains(cfg.S3HTTPHosts, "s3") {
		t.Errorf("S3 hosts spoken to over http = %q, want the compose service s3 among them", cfg.S3HTTPHosts)
	}
	if thumbd.Build == nil {
		t.Error("thumbd is not built from the Dockerfile beside the compose file")
	}
}

func TestComposeHealthchecks(t *testing.T) {
	p := loadCompose(t, nil)
	for _, name := range []string{"thumbd", "s3", "postgres", "thumbd-a", "thumbd-b"} {
		hc := p.Services[name].Healthcheck
		if hc == nil || len(hc.Test) == 0 {
			t.Errorf("%s has no healthcheck: `docker compose up --wait` cannot tell when it is up", name)
			continue
		}
		interval, err := time.ParseDuration(hc.Interval)
		if err != nil || interval > 5*time.Second {
			t.Errorf("%s healthcheck interval = %q, want at most 5s", name, hc.Interval)
		}
		if timeout, err := time.ParseDuration(hc.Timeout); err != nil || timeout <= 0 {
			t.Errorf("%s healthcheck timeout = %q", name, hc.Timeout)
		}
		if hc.Test[0] != "CMD" {
			t.Errorf("%s healthcheck = %q, want the exec form [CMD ...] (no shell needed in the image)", name, hc.Test)
		}
	}
	want := []string{"CMD", imageBinary, "healthcheck"}
	for _, name := range []string{"thumbd", "thumbd-a", "thumbd-b"} {
		if got := p.Services[name].Healthcheck; got != nil && !slices.Equal(got.Test, want) {
			t.Errorf("%s healthcheck = %q, want %q", name, got.Test, want)
		}
	}
	if got := p.Services["postgres"].Healthcheck; got != nil && (len(got.Test) < 2 || got.Test[1] != "pg_isready") {
		t.Errorf("postgres healthcheck = %q, want pg_isready (healthy once it accepts connections)", got.Test)
	}
}

// TestComposeCluster checks the cluster profile: PostgreSQL and two thumbd
// instances, each loading through thumbd's own configuration loader to one
// shared database and one shared bucket for kept files (the bucket s3-init
// creates, with the S3 server's credentials), each with its own port,
// public URL and data volume, started only once the database is healthy
// and the bucket exists.
func TestComposeCluster(t *testing.T) {
	p := loadCompose(t, nil)
	for name, s := range p.Services {
		cluster := name == "postgres" || name == "thumbd-a" || name == "thumbd-b"
		if got := slices.Equal(s.Profiles, []string{"cluster"}); got != cluster {
			t.Errorf("service %s profiles = %q; want the cluster profile exactly for postgres, thumbd-a and thumbd-b", name, s.Profiles)
		}
	}
	pg, s3, bucketStep := p.Services["postgres"], p.Services["s3"], p.Services["s3-init"]
	if pg.Image == "" {
		t.Fatal("no postgres service")
	}
	type instance struct {
		name, port string
		cfg        app.Config
	}
	var insts []instance
	for _, name := range []string{"thumbd-a", "thumbd-b"} {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		if s.Build == nil {
			t.Errorf("%s is not built from the Dockerfile", name)
		}
		if got := s.DependsOn["postgres"]["condition"]; got != "service_healthy" {
			t.Errorf("%s depends on postgres with condition %q, want service_healthy", name, got)
		}
		if got := s.DependsOn["s3-init"]["condition"]; got != "service_completed_successfully" {
			t.Errorf("%s depends on s3-init with condition %q, want service_completed_successfully", name, got)
		}
		if len(s.Volumes) != 1 || !strings.HasSuffix(s.Volumes[0], ":/var/lib/thumbd") {
			t.Errorf("%s volumes = %q, want its own data directory", name, s.Volumes)
		}
		ports := portMappings(t, s)
		if len(ports) != 1 {
			t.Fatalf("%s ports = %q", name, ports)
		}
		insts = append(insts, instance{name, ports[0], composeEnvConfig(t, s)})
	}
	a, b := insts[0], insts[1]
	if a.port == b.port || a.cfg.PublicURL == b.cfg.PublicURL || p.Services["thumbd-a"].Volumes[0] == p.Services["thumbd-b"].Volumes[0] {
		t.Errorf("the instances share a port, public URL or data volume: %s %s %q, %s %s %q", a.port, a.cfg.PublicURL,
			p.Services["thumbd-a"].Volumes, b.port, b.cfg.PublicURL, p.Services["thumbd-b"].Volumes)
	}
	if a.port != "127.0.0.1:8081:8080" || a.cfg.PublicURL != "http://localhost:8081" || b.port != "127.0.0.1:8082:8080" || b.cfg.PublicURL != "http://localhost:8082" {
		t.Errorf("ports and public URLs: %s %s, %s %s", a.port, a.cfg.PublicURL, b.port, b.cfg.PublicURL)
	}
	for _, in := range insts {
		c := in.cfg
		if c.Store != "postgres" || c.DatabaseURL != a.cfg.DatabaseURL || c.FilesURL != a.cfg.FilesURL || c.FailoverAfter != a.cfg.FailoverAfter || c.SpreadOutputs != a.cfg.SpreadOutputs || c.SpreadOutputs == 0 {
			t.Errorf("%s: store %q database %q files %q failover %v spread %d; want postgres, tasks spread, and the same as thumbd-a", in.name, c.Store, c.DatabaseURL, c.FilesURL, c.FailoverAfter, c.SpreadOutputs)
		}
		if !c.AllowPrivateNetworks || !slices.Contains(c.S3HTTPHosts, "s3") {
			t.Errorf("%s: private networks %v, http hosts %q; want the in-compose S3 server reachable over http", in.name, c.AllowPrivateNetworks, c.S3HTTPHosts)
		}
	}
	db, err := url.Parse(a.cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := db.User.Password()
	if db.Hostname() != "postgres" || db.Port() != "5432" || db.User.Username() != pg.Environment["POSTGRES_USER"] ||
		pw != pg.Environment["POSTGRES_PASSWORD"] || strings.TrimPrefix(db.Path, "/") != pg.Environment["POSTGRES_DB"] {
		t.Errorf("THUMBD_DATABASE_URL %s does not match the postgres service's user, password and database %v", a.cfg.DatabaseURL, pg.Environment)
	}
	files, err := url.Parse(a.cfg.FilesURL)
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := files.User.Password()
	bucket, _, _ := strings.Cut(strings.TrimPrefix(files.Path, "/"), "/")
	if files.Scheme != "s3" || files.Host != "s3:7070" || bucket != bucketStep.Environment["S3_BUCKET"] ||
		files.User.Username() != s3.Environment["ROOT_ACCESS_KEY"] || secret != s3.Environment["ROOT_SECRET_KEY"] {
		t.Errorf("THUMBD_FILES_URL %s: want the bucket s3-init creates (%s) on s3:7070 with the S3 server's credentials", a.cfg.FilesURL, bucketStep.Environment["S3_BUCKET"])
	}
}

func TestComposeBucketStep(t *testing.T) {
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`\|\|\s*true`).Match(raw) {
		t.Error("docker-compose.yml hides a failure with `|| true`")
	}
	p := loadCompose(t, nil)
	// Every image is pinned to a version: not untagged, not latest.
	pinned := regexp.MustCompile(`^[a-z0-9./-]+:v?[0-9]+\.[0-9]+(\.[0-9]+)?$`)
	for name, s := range p.Services {
		if s.Image != "" && !pinned.MatchString(s.Image) {
			t.Errorf("service %s uses image %q, want one pinned to a version like name:1.2.3", name, s.Image)
		}
	}
	mb, ok := p.Services["s3-init"]
	if !ok {
		t.Fatal("no s3-init service creates the bucket")
	}
	if strings.Contains(mb.Image, "aws-cli") {
		t.Errorf("s3-init uses %s, several hundred MB; want a small image", mb.Image)
	}
	if mb.Restart != "" && mb.Restart != "no" {
		t.Errorf("s3-init restart = %q: a one-shot step must not restart", mb.Restart)
	}
	if got := p.Services["thumbd"].DependsOn["s3-init"]["condition"]; got != "service_completed_successfully" {
		t.Errorf("thumbd depends on s3-init with condition %q, want service_completed_successfully (a failed bucket step must stop the stack)", got)
	}
	if got := mb.DependsOn["s3"]["condition"]; got != "service_healthy" {
		t.Errorf("s3-init depends on s3 with condition %q, want service_healthy", got)
	}
}

// TestComposeBucketScript runs s3-init's script, as the compose file has
// it, with this machine's sh and curl against a real versitygw: it creates
// the bucket, accepts an existing one, and fails on wrong credentials and
// on an unreachable server.
func TestComposeBucketScript(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed (it runs the compose file's bucket step here): bash scripts/deps.sh compose")
	}
	out, _ := exec.Command(curl, "--help", "all").Output()
	if !bytes.Contains(out, []byte("--aws-sigv4")) {
		t.Fatalf("%s has no --aws-sigv4 (curl 7.75 or later has)", curl)
	}
	p := loadCompose(t, nil)
	mb := p.Services["s3-init"]
	if !slices.Equal(mb.Entrypoint, []string{"/bin/sh", "-c"}) || len(mb.Command) != 1 {
		t.Fatalf("s3-init: entrypoint %q command %q, want /bin/sh -c and one script", mb.Entrypoint, mb.Command)
	}
	script := mb.Command[0]
	srv := s3test.Start(t)
	bucket := mb.Environment["S3_BUCKET"]
	run := func(secret, endpoint string) (string, error) {
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		for k, v := range mb.Environment {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+secret, "S3_ENDPOINT="+endpoint)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	endpoint := "http://" + srv.Endpoint
	if out, err := run(srv.Secret, endpoint); err != nil || !strings.Contains(out, "created") {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(srv.Dir, bucket)); err != nil || !fi.IsDir() {
		t.Fatalf("bucket %q not created in versitygw's directory: %v", bucket, err)
	}
	if out, err := run(srv.Secret, endpoint); err != nil || !strings.Contains(out, "exists") {
		t.Errorf("second run (bucket exists): %v\n%s", err, out)
	}
	if out, err := run("wrong-secret", endpoint); err == nil {
		t.Errorf("wrong credentials: the step succeeded\n%s", out)
	} else if !strings.Contains(out, "403") {
		t.Errorf("wrong credentials: output does not say why:\n%s", out)
	}
	if out, err := run(srv.Secret, "http://127.0.0.1:1"); err == nil {
		t.Errorf("unreachable server: the step succeeded\n%s", out)
	}
}

// TestComposeConfig asks compose itself (Debian's docker-compose, or the
// docker compose plugin) to validate and render the file with THUMBD_PORT
// set.
func TestComposeConfig(t *testing.T) {
	var cmd *exec.Cmd
	if p, err := exec.LookPath("docker-compose"); err == nil {
		cmd = exec.Command(p, "-f", composeFile, "config")
	} else if exec.Command("docker", "compose", "version").Run() == nil {
		cmd = exec.Command("docker", "compose", "-f", composeFile, "config")
	} else {
		t.Fatal("neither docker-compose nor the docker compose plugin is installed: bash scripts/deps.sh compose")
	}
	cmd.Env = append(os.Environ(), "THUMBD_PORT=18080", "THUMBD_S3_PORT=17070")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, stderr.Bytes())
	}
	var p composeProject
	if err := yaml.Unmarshal(out, &p); err != nil {
		t.Fatalf("compose config output: %v\n%s", err, out)
	}
	if got := portMappings(t, p.Services["thumbd"]); !slices.Equal(got, []string{"127.0.0.1:18080:8080"}) {
		t.Errorf("thumbd ports = %q", got)
	}
	if got := portMappings(t, p.Services["s3"]); !slices.Equal(got, []string{"127.0.0.1:17070:7070"}) {
		t.Errorf("s3 ports = %q", got)
	}
	if got := p.Services["thumbd"].Environment["THUMBD_PUBLIC_URL"]; got != "http://localhost:18080" {
		t.Errorf("THUMBD_PUBLIC_URL = %q", got)
	}
	if got := p.Services["thumbd"].DependsOn["s3-init"]["condition"]; got != "service_completed_successfully" {
		t.Errorf("thumbd depends on s3-init: %q", got)
	}
	// With the profile, its services are there with their dependencies.
	args := append(slices.Clone(cmd.Args[1:len(cmd.Args)-1]), "--profile", "cluster", "config")
	cluster := exec.Command(cmd.Path, args...)
	cluster.Env = append(os.Environ(), "THUMBD_A_PORT=18081")
	stderr.Reset()
	cluster.Stderr = &stderr
	if out, err = cluster.Output(); err != nil {
		t.Fatalf("%s: %v\n%s", cluster, err, stderr.Bytes())
	}
	p = composeProject{}
	if err := yaml.Unmarshal(out, &p); err != nil {
		t.Fatalf("compose config output: %v\n%s", err, out)
	}
	if got := portMappings(t, p.Services["thumbd-a"]); !slices.Equal(got, []string{"127.0.0.1:18081:8080"}) {
		t.Errorf("thumbd-a ports = %q", got)
	}
	for _, name := range []string{"thumbd-a", "thumbd-b"} {
		s := p.Services[name]
		if s.DependsOn["postgres"]["condition"] != "service_healthy" || s.Environment["THUMBD_STORE"] != "postgres" {
			t.Errorf("%s as compose renders it: depends on %v, environment %v", name, s.DependsOn, s.Environment)
		}
	}
	if p.Services["postgres"].Healthcheck == nil {
		t.Error("postgres as compose renders it has no healthcheck")
	}
}

// dockerInstruction is one instruction of a Dockerfile: its keyword and
// the rest of the (continued) line.
type dockerInstruction struct{ cmd, args string }

// parseDockerfile splits a Dockerfile into instructions, joining
// continuation lines and dropping comments.
func parseDockerfile(t *testing.T, path string) []dockerInstruction {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerInstruction
	var cur strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// execForm decodes an instruction's JSON (exec) form.
func execForm(t *testing.T, in dockerInstruction) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil {
		t.Fatalf("%s %s: not the exec form [\"...\"]: %v", in.cmd, in.args, err)
	}
	return v
}

func TestDockerfile(t *testing.T) {
	all := parseDockerfile(t, dockerfilePath)
	// The final stage: from the last FROM on.
	last := 0
	for i, in := range all {
		if in.cmd == "FROM" {
			last = i
		}
	}
	final := all[last:]
	find := func(cmd string) []dockerInstruction {
		var out []dockerInstruction
		for _, in := range final {
			if in.cmd == cmd {
				out = append(out, in)
			}
		}
		return out
	}
	one := func(cmd string) dockerInstruction {
		t.Helper()
		got := find(cmd)
		if len(got) != 1 {
			t.Fatalf("the final stage has %d %s instructions, want 1", len(got), cmd)
		}
		return got[0]
	}

	if u := one("USER").args; u != "10001:10001" && u != "10001" {
		t.Errorf("USER %s, want uid 10001 (numeric, so runAsNonRoot checks see it)", u)
	}
	var makesUser bool
	for _, in := range find("RUN") {
		if strings.Contains(in.args, "useradd") && strings.Contains(in.args, "--uid 10001") {
			makesUser = true
		}
	}
	if !makesUser {
		t.Error("the image does not create the user with uid 10001")
	}
	if got := execForm(t, one("ENTRYPOINT")); !slices.Equal(got, []string{imageBinary}) {
		t.Errorf("ENTRYPOINT %q, want [%q]", got, imageBinary)
	}
	var copied bool
	for _, in := range find("COPY") {
		copied = copied || strings.HasSuffix(in.args, " "+imageBinary)
	}
	if !copied {
		t.Errorf("no COPY puts the binary at %s", imageBinary)
	}

	hc := one("HEALTHCHECK").args
	opts, cmdArgs, _ := strings.Cut(hc, "CMD ")
	if got := execForm(t, dockerInstruction{"HEALTHCHECK", cmdArgs}); !slices.Equal(got, []string{imageBinary, "healthcheck"}) {
		t.Errorf("HEALTHCHECK CMD %q, want [%q healthcheck]", got, imageBinary)
	}
	m := regexp.MustCompile(`--interval=(\S+)`).FindStringSubmatch(opts)
	if m == nil {
		t.Errorf("HEALTHCHECK has no --interval: %s", hc)
	} else if d, err := time.ParseDuration(m[1]); err != nil || d > 10*time.Second {
		t.Errorf("HEALTHCHECK --interval=%s, want at most 10s", m[1])
	}

	// The address the image listens on is the port compose publishes and
	// the one `thumbd healthcheck` probes.
	var env string
	for _, in := range find("ENV") {
		env += " " + in.args
	}
	am := regexp.MustCompile(`THUMBD_ADDR=(\S+)`).FindStringSubmatch(env)
	if am == nil {
		t.Fatal("the image does not set THUMBD_ADDR")
	}
	probe, err := probeURL(am[1])
	if err != nil || probe != "http://127.0.0.1:8080/readyz" {
		t.Errorf("healthcheck probes %q (%v) for THUMBD_ADDR=%s, want http://127.0.0.1:8080/readyz", probe, err, am[1])
	}
	if e := one("EXPOSE").args; e != "8080" {
		t.Errorf("EXPOSE %s, want 8080", e)
	}
	p := loadCompose(t, nil)
	if got := portMappings(t, p.Services["thumbd"]); len(got) != 1 || !strings.HasSuffix(got[0], ":8080") {
		t.Errorf("compose publishes %q, not the image's port 8080", got)
	}
	if v := one("VOLUME").args; !strings.Contains(v, "/var/lib/thumbd") || !strings.Contains(env, "THUMBD_DATA_DIR=/var/lib/thumbd") {
		t.Errorf("VOLUME %s and ENV%s: want the data directory /var/lib/thumbd as the volume", v, env)
	}
}
