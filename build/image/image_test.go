package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const (
	testVersion = "v0.0.0-imagetest"
	// testEpoch is SOURCE_DATE_EPOCH for the test's builds: 2023-11-14T22:13:20Z.
	testEpoch = "1700000000"
)

var testCreated = time.Unix(1700000000, 0).UTC()

// TestImage builds the image twice with scripts/image.sh, as a user would, and checks that the
// two tarballs are the same bytes, that the OCI layout holds a valid image per platform whose
// configuration runs meshdns as 65532:65532 from a layer of its two files, and that the
// binaries for this machine print the version stamped in, the agents' refusing what needs
// the API server. The docker tarball of this
// machine's platform must hold the same image.
func TestImage(t *testing.T) {
	dir := t.TempDir()
	first, digest := buildImage(t, filepath.Join(dir, "first.tar"))
	second, again := buildImage(t, filepath.Join(dir, "second.tar"))
	if digest != again || fileHash(t, first) != fileHash(t, second) {
		t.Fatalf("two builds differ: index %s and %s, files %s and %s", digest, again, fileHash(t, first), fileHash(t, second))
	}

	idx := readLayout(t, first, filepath.Join(dir, "layout"), digest)
	images := platformImages(t, idx)
	if plats := slices.Sorted(maps.Keys(images)); !slices.Equal(plats, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("platforms %v, want linux/amd64 and linux/arm64", plats)
	}
	for plat, img := range images {
		t.Run(plat, func(t *testing.T) {
			checkConfig(t, img, plat)
			bin, agent := binariesOf(t, img)
			checkELF(t, bin, strings.TrimPrefix(plat, "linux/"))
			checkELF(t, agent, strings.TrimPrefix(plat, "linux/"))
			if plat == "linux/"+runtime.GOARCH {
				checkVersion(t, bin)
				checkVersion(t, agent)
				checkAgentBuild(t, agent)
			}
		})
	}

	host := "linux/" + runtime.GOARCH
	hostImage, ok := images[host]
	if !ok {
		t.Fatalf("no image for this machine (%s) to run", host)
	}
	docker, dockerDigest := buildImage(t, filepath.Join(dir, "docker.tar"), "--format", "docker", "--platforms", host)
	if want, _ := hostImage.ConfigName(); dockerDigest != want.String() {
		t.Errorf("docker tarball's image ID %s, want that of the OCI layout's %s image, %s", dockerDigest, host, want)
	}
	checkDockerTarball(t, docker, hostImage)
}

// repoRoot is the meshdns checkout this module lives in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "image.sh")); err != nil {
		t.Fatal(err)
	}
	return root
}

// buildImage runs scripts/image.sh and returns the tarball and the digest it reports.
func buildImage(t *testing.T, out string, args ...string) (path, digest string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "scripts", "image.sh"), append([]string{"--version", testVersion}, append(args, out)...)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+testEpoch)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, stderr.Bytes())
	}
	fields := strings.Fields(string(stdout))
	if len(fields) != 2 || fields[0] != out || !strings.HasPrefix(fields[1], "sha256:") {
		t.Fatalf("scripts/image.sh printed %q, want %q and a digest", stdout, out)
	}
	return out, fields[1]
}

func fileHash(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// readLayout extracts the OCI layout tarball into dir, checking that every entry has the fixed
// owner, mode and time, and returns the image index that index.json names by the version.
func readLayout(t *testing.T, tarPath, dir, digest string) v1.ImageIndex {
	t.Helper()
	extract(t, tarPath, dir, func(h *tar.Header) {
		mode := int64(0o644)
		if h.Typeflag == tar.TypeDir {
			mode = 0o755
		}
		if !h.ModTime.Equal(testCreated) || h.Uid != 0 || h.Gid != 0 || h.Mode != mode {
			t.Errorf("%s: time %s, owner %d:%d, mode %o; want %s, 0:0, %o", h.Name, h.ModTime, h.Uid, h.Gid, h.Mode, testCreated, mode)
		}
	})
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest.String() != digest || m.Manifests[0].Annotations[refNameAnnotation] != testVersion {
		t.Fatalf("index.json %+v, want one entry: %s named %s", m.Manifests, digest, testVersion)
	}
	idx, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	// Digests and sizes of every manifest, configuration and layer against their contents.
	if err := validate.Index(idx); err != nil {
		t.Fatalf("image index: %v", err)
	}
	return idx
}

// platformImages returns the images of the index by platform, checking the index's labels.
func platformImages(t *testing.T, idx v1.ImageIndex) map[string]v1.Image {
	t.Helper()
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	checkLabels(t, "index", m.Annotations)
	images := map[string]v1.Image{}
	for _, desc := range m.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[desc.Platform.String()] = img
	}
	return images
}

// checkLabels checks the OCI labels (or annotations) against the build's inputs: the version
// given, the time of SOURCE_DATE_EPOCH and, in a git checkout, the commit.
func checkLabels(t *testing.T, what string, labels map[string]string) {
	t.Helper()
	want := map[string]string{
		"org.opencontainers.image.version": testVersion,
		"org.opencontainers.image.created": "2023-11-14T22:13:20Z",
		"org.opencontainers.image.source":  "https://github.com/meshdns/meshdns",
		"org.opencontainers.image.title":   "meshdns",
	}
	if head, err := exec.Command("git", "-C", repoRoot(t), "rev-parse", "HEAD").Output(); err == nil {
		want["org.opencontainers.image.revision"] = strings.TrimSpace(string(head))
	}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("%s: label %s = %q, want %q", what, k, labels[k], v)
		}
	}
	if len(labels) != len(want) {
		t.Errorf("%s: labels %v, want %v", what, labels, want)
	}
}

func checkConfig(t *testing.T, img v1.Image, plat string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.OS + "/" + cf.Architecture; got != plat {
		t.Errorf("configuration's platform %s, want %s", got, plat)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532", cf.Config.User)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/meshdns"}) || len(cf.Config.Cmd) != 0 {
		t.Errorf("entrypoint %q, cmd %q; want [/meshdns] and none", cf.Config.Entrypoint, cf.Config.Cmd)
	}
	if !cf.Created.Equal(testCreated) || len(cf.History) != 1 || !cf.History[0].Created.Equal(testCreated) {
		t.Errorf("created %s, history %+v; want %s everywhere", cf.Created, cf.History, testCreated)
	}
	checkLabels(t, plat, cf.Config.Labels)
}

// binariesOf returns the two files of the image's one layer, /meshdns and /meshdns-agent,
// after checking that the layer holds nothing else (no shell, no directories) and that root
// owns them.
func binariesOf(t *testing.T, img v1.Image) (bin, agent []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var files [][]byte
	for _, name := range []string{"meshdns", "meshdns-agent"} {
		h, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != name || h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(testCreated) {
			t.Errorf("layer entry %s type %c mode %o owner %d:%d time %s; want %s, a file, 755, 0:0, %s",
				h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime, name, testCreated)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, data)
	}
	if h, err := tr.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("layer holds more than meshdns and meshdns-agent: %v %v", h, err)
	}
	return files[0], files[1]
}

func checkELF(t *testing.T, bin []byte, arch string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elfMachine[arch] {
		t.Errorf("binary for %s, want %s", f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("binary is dynamically linked")
		}
	}
}

// runBinary runs a binary of the image for this machine with args.
func runBinary(t *testing.T, bin []byte, args ...string) ([]byte, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meshdns")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return exec.Command(path, args...).CombinedOutput()
}

// checkVersion runs the image's binary for this machine.
func checkVersion(t *testing.T, bin []byte) {
	t.Helper()
	out, err := runBinary(t, bin, "version")
	if err != nil || string(out) != "meshdns "+testVersion+"\n" {
		t.Errorf("meshdns version: %q, %v; want %q", out, err, "meshdns "+testVersion+"\n")
	}
}

// checkAgentBuild checks that the agents' binary is the build without Kubernetes support.
func checkAgentBuild(t *testing.T, bin []byte) {
	t.Helper()
	out, err := runBinary(t, bin, "controller")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), "built without Kubernetes support") {
		t.Errorf("meshdns-agent controller: %q, %v; want exit 2, the build without Kubernetes support", out, err)
	}
}

// checkDockerTarball checks that the tarball tags meshdns:VERSION and holds want.
func checkDockerTarball(t *testing.T, path string, want v1.Image) {
	t.Helper()
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{"meshdns:" + testVersion}) {
		t.Fatalf("docker tarball's manifest.json %+v, want one image tagged meshdns:%s", m, testVersion)
	}
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("docker tarball: %v", err)
	}
	got, _ := img.ConfigName()
	if wantConfig, _ := want.ConfigName(); got != wantConfig {
		t.Errorf("docker tarball's configuration %s, want %s", got, wantConfig)
	}
}

// extract writes the regular files and directories of a tar below dir, calling check on each
// header first.
func extract(t *testing.T, tarPath, dir string, check func(*tar.Header)) {
	t.Helper()
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		check(h)
		target := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(target, dir+string(filepath.Separator)) {
			t.Fatalf("tar entry %s leaves the layout", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			err = writeFile(target, tr)
		default:
			t.Fatalf("tar entry %s of type %c, want files and directories only", h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(path string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestDeployManifest keeps deploy/meshdns.yaml in step with the image: the container runs the
// image's entrypoint (it sets no command of its own) as the image's user.
func TestDeployManifest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "meshdns.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := string(data)
	uid, _, _ := strings.Cut(user, ":")
	if !strings.Contains(manifest, "\n            runAsUser: "+uid+"\n") {
		t.Errorf("deploy/meshdns.yaml: no runAsUser: %s, the image's user", uid)
	}
	if strings.Contains(manifest, "command:") {
		t.Errorf("deploy/meshdns.yaml sets a command; the image's entrypoint is %s", binaryPath)
	}
	if !strings.Contains(manifest, "\n          args:\n            - serve\n") {
		t.Errorf("deploy/meshdns.yaml: args do not start with serve, the command of %s", binaryPath)
	}
}
