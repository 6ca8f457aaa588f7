#!/usr/bin/env bash
# Proves that the Dockerfile builds, for each platform it claims
# (linux/amd64, linux/arm64), and that the image runs, without any container
# registry:
#
#  1. installs buildah (and, if needed, runc) from Debian when missing;
#  2. assembles two local stand-ins for the Dockerfile's base images, from
#     scratch and from files of this machine:
#       golang  - the host's Go toolchain (go env GOROOT) at /usr/local/go, a
#                 POSIX sh with its libraries, the CA bundle, /go, /tmp,
#                 set up like the official golang image; for the host's
#                 platform only, as the build stage runs there
#                 (FROM --platform=${BUILDPLATFORM});
#       static  - what gcr.io/distroless/static-debian12:nonroot holds that
#                 matters here: the CA bundle, /etc/passwd and /etc/group with
#                 nonroot (65532), nsswitch.conf, /tmp, /home/nonroot, and
#                 user 65532; like the real one, a manifest list with an
#                 image per platform (the files do not depend on it);
#  3. for each platform, buildah bud --platform linux/<arch> with GO_IMAGE and
#     BASE_IMAGE pointed at them (--pull=never): the build stage runs on the
#     host and cross-compiles (TARGETARCH). Modules come from the host's
#     module cache (filled first with go mod download, through GOPROXY as the
#     host sees it), mounted read-only as the build's first GOPROXY; both
#     builds share the Dockerfile's cache mounts;
#  4. checks each image without running it: config (os, architecture, user
#     65532, entrypoint, cmd, port 10040), the binary's ELF header (machine of
#     the platform, a static executable: no interpreter, no dynamic section),
#     its build info (GOOS, GOARCH, CGO_ENABLED=0, -trimpath), the version
#     ldflags (version and revision strings), the CA bundle and the nonroot
#     user. The host's platform's image is also run: --version, then --demo
#     on a free loopback port, /metrics scraped, the process's uid 65532, a
#     clean stop on SIGTERM. Another platform's binary is not run (no
#     emulator needed);
#  5. removes every container, image and cache it made (also at the start,
#     left over from an interrupted run). KEEP_IMAGE=1 keeps the built images
#     (localhost/whatsapp-exporter-image-test/whatsapp_exporter:test-<arch>).
#
#   IMAGE_TEST_ARCHES="amd64 arm64"  the platforms (linux/...), default both;
#                                    CI runs both. "amd64" alone is quicker.
#
# Needs root (apt-get, rootful buildah). Exits non-zero on any failure.
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=localhost/whatsapp-exporter-image-test
go_image=$prefix/golang:local
base_image=$prefix/static:nonroot # a manifest list of $base_image-<arch>
image=$prefix/whatsapp_exporter:test # $image-<arch>
ctr_prefix=whatsapp-exporter-image-test
# Unique per run, so that finding it in a binary proves the ldflags of this
# build took effect.
version="image-test.$(date -u +%Y%m%d%H%M%S).$$"
# The platforms the Dockerfile claims; each is built, the host's also run.
supported_arches="amd64 arm64"
arches=${IMAGE_TEST_ARCHES:-$supported_arches}
start=$SECONDS

log() { printf '==> %s\n' "$*" >&2; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}
# phase NAME: ends the phase under way (its time goes to the summary) and
# starts NAME.
phases=()
phase_name=
phase_start=$SECONDS
phase() {
	[[ -z $phase_name ]] || phases+=("$phase_name $((SECONDS - phase_start)) s")
	phase_name=$1
	phase_start=$SECONDS
}
phase tools

[[ $(uname -s) == Linux ]] || fail "needs Linux (buildah)"
[[ $(id -u) == 0 ]] || fail "needs root: it installs packages with apt-get and runs rootful buildah"
for arch in $arches; do
	[[ " $supported_arches " == *" $arch "* ]] ||
		fail "IMAGE_TEST_ARCHES: '$arch' is not a platform of the Dockerfile ($supported_arches)"
done
[[ -n ${arches// /} ]] || fail "IMAGE_TEST_ARCHES is empty"

# One run at a time: runs share the image names.
exec 9>/run/lock/whatsapp-exporter-image-test.lock
flock -n 9 || fail "another run of $0 is in progress"
# Working files, and buildah's cache mounts; a killed run's are removed here.
rm -rf /var/tmp/whatsapp-exporter-image-test.*
workdir=$(mktemp -d /var/tmp/whatsapp-exporter-image-test.XXXXXX)
demo_pid=
demo_job=

# Everything this script creates carries $prefix (images, and the images of
# the containers buildah bud makes) or $ctr_prefix (containers), so cleanup
# finds the leftovers of an earlier run that was killed.
cleanup_store() {
	command -v buildah >/dev/null || return 0
	local name img
	while IFS='|' read -r name img; do
		if [[ $name == "$ctr_prefix"* || $img == "$prefix/"* ]]; then
			buildah rm "$name" >/dev/null 2>&1 || true
		fi
	done < <(buildah containers --format '{{.ContainerName}}|{{.ImageName}}' 2>/dev/null || true)
	# (buildah rmi does not remove a manifest list: "tag not known".)
	buildah manifest rm "$base_image" >/dev/null 2>&1 || true
	local imgs=("$go_image") arch
	for arch in $supported_arches; do
		imgs+=("$base_image-$arch")
		[[ ${KEEP_IMAGE:-} == 1 && ${1:-} == final ]] || imgs+=("$image-$arch")
	done
	for name in "${imgs[@]}"; do
		buildah rmi -f "$name" >/dev/null 2>&1 || true
	done
}

cleanup() {
	local rc=$?
	set +e
	if [[ -n $demo_pid ]] && kill -0 "$demo_pid" 2>/dev/null; then
		kill -KILL "$demo_pid" 2>/dev/null
	fi
	if [[ -n $demo_job ]] && kill -0 "$demo_job" 2>/dev/null; then
		kill -TERM "$demo_job" 2>/dev/null
		wait "$demo_job" 2>/dev/null
	fi
	cleanup_store final
	rm -rf "$workdir"
	phase end
	log "times: $(printf '%s; ' "${phases[@]}" | sed 's/; $//')"
	if ((rc == 0)); then
		log "PASS ($arches) in $((SECONDS - start)) s"
	else
		printf 'image-test: FAILED (exit %d) after %d s\n' "$rc" $((SECONDS - start)) >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

apt_install() {
	log "apt-get install $*"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "$@" >"$workdir/apt.log" 2>&1; then
		apt-get update >"$workdir/apt.log" 2>&1 || { cat "$workdir/apt.log" >&2; fail "apt-get update failed"; }
		apt-get install -y --no-install-recommends "$@" >"$workdir/apt.log" 2>&1 ||
			{ tail -n 20 "$workdir/apt.log" >&2; fail "apt-get install $* failed"; }
	fi
}

# --- 1. tools ------------------------------------------------------------
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v curl >/dev/null || missing+=(curl)
command -v ss >/dev/null || missing+=(iproute2)
[[ -s /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
((${#missing[@]} == 0)) || apt_install "${missing[@]}"
log "buildah $(buildah version --json 2>/dev/null | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' | head -n 1)"

go_bin=$(command -v go || echo /usr/local/go/bin/go)
[[ -x $go_bin ]] || fail "no Go toolchain on the host (go on PATH or /usr/local/go)"
goroot=$("$go_bin" env GOROOT)
goproxy=$("$go_bin" env GOPROXY)
gosumdb=$("$go_bin" env GOSUMDB)
goprivate=$("$go_bin" env GOPRIVATE)
goarch=$("$go_bin" env GOARCH)
gomodcache=$("$go_bin" env GOMODCACHE)
log "host $("$go_bin" version), GOROOT $goroot, GOPROXY $goproxy, GOMODCACHE $gomodcache"

# The modules, into the host's module cache, where they stay for the next
# run (and CI's go test has most of them there already). The builds read
# them from there, mounted read-only and named as their first GOPROXY
# (a file:// proxy: go.sum still checks every module), so neither build
# downloads anything that the host has. A module the host lacks falls
# through to the host's GOPROXY.
phase "go mod download (host)"
(cd "$repo" && "$go_bin" mod download) >"$workdir/download.log" 2>&1 ||
	{ cat "$workdir/download.log" >&2; fail "go mod download on the host failed"; }
host_proxy=$gomodcache/cache/download
[[ -d $host_proxy ]] || fail "no module download cache at $host_proxy"
proxy_mount=/var/cache/host-gomodcache
phase "base images"

cleanup_store

# The overlay store and scratch containers; if this fails, buildah cannot
# work on this machine at all.
probe=$(buildah from --name "$ctr_prefix-probe" scratch 2>"$workdir/err") ||
	fail "buildah cannot create a container here: $(cat "$workdir/err")"
buildah mount "$probe" >/dev/null 2>"$workdir/err" ||
	fail "buildah cannot mount a container's root file system here (overlay/storage): $(cat "$workdir/err")"
buildah rm "$probe" >/dev/null

# --- 2. local base images ----------------------------------------------------
# copy_with_libs ROOT FILE...: copies each program, and the shared libraries
# ldd names for it, to the same paths under ROOT (symlinks resolved).
copy_with_libs() {
	local root=$1 f lib
	shift
	for f in "$@"; do
		install -D -m 0755 "$(readlink -f "$f")" "$root$f"
		while read -r lib; do
			[[ -e $root$lib ]] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
		done < <(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true)
	done
}

log "assembling $go_image from $goroot"
ctr=$(buildah from --name "$ctr_prefix-golang" scratch)
root=$(buildah mount "$ctr")
mkdir -p "$root"/{etc/ssl/certs,root,go/bin,go/src,usr/local/go,usr/bin}
install -d -m 1777 "$root/tmp"
# GOROOT without its test suite (not needed to build).
tar -C "$goroot" --exclude=./test -cf - . | tar -C "$root/usr/local/go" -xf -
copy_with_libs "$root" /bin/sh
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
buildah umount "$ctr" >/dev/null
buildah config --os linux --arch "$goarch" \
	--env PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--env GOPATH=/go --env GOTOOLCHAIN=local \
	--workingdir /go --cmd /bin/sh "$ctr"
buildah commit --quiet --rm "$ctr" "$go_image" >/dev/null

log "assembling $base_image (${supported_arches// /, })"
ctr=$(buildah from --name "$ctr_prefix-static" scratch)
root=$(buildah mount "$ctr")
mkdir -p "$root"/{etc/ssl/certs,root,bin}
install -d -m 1777 "$root/tmp"
install -d -m 0700 -o 65532 -g 65532 "$root/home/nonroot"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$root/etc/group"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
buildah umount "$ctr" >/dev/null
buildah config --os linux --arch "$goarch" \
	--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
	--user 65532 --workingdir /home/nonroot "$ctr"
buildah commit --quiet --rm "$ctr" "$base_image-$goarch" >/dev/null
# The same files labelled for each other platform, and one name for all:
# buildah bud --platform picks the image of the platform from a manifest
# list. (buildah 1.28, Debian 12's, looks up every stage's base with the
# platform of the first FROM --platform, here the host's: containers/buildah
# issue 4721. With a single-platform BASE_IMAGE the arm64 build would find no
# base there, or the wrong one on a fixed buildah; the list serves both.)
buildah manifest create "$base_image" >/dev/null
for arch in $supported_arches; do
	if [[ $arch != "$goarch" ]]; then
		ctr=$(buildah from --pull=never --name "$ctr_prefix-static-$arch" "$base_image-$goarch")
		buildah config --arch "$arch" "$ctr"
		buildah commit --quiet --rm "$ctr" "$base_image-$arch" >/dev/null
	fi
	buildah manifest add "$base_image" "containers-storage:$base_image-$arch" >/dev/null
done

# --- OCI runtime -------------------------------------------------------------
# buildah's default runtime, crun, refuses hosts whose cgroup v2 hierarchy is
# mounted beside v1 with controllers ("cgroups in hybrid mode not supported");
# runc copes. Last resort: chroot isolation, which needs no OCI runtime.
ctr=$(buildah from --pull=never --name "$ctr_prefix-rtprobe" "$go_image")
runtime_ok() { buildah run --network host "$ctr" -- /bin/sh -c 'exit 0' >"$workdir/err" 2>&1; }
unset BUILDAH_RUNTIME BUILDAH_ISOLATION
if runtime_ok; then
	log "OCI runtime: buildah's default"
else
	log "buildah's default runtime fails: $(head -n 1 "$workdir/err")"
	command -v runc >/dev/null || apt_install runc
	export BUILDAH_RUNTIME
	BUILDAH_RUNTIME=$(command -v runc)
	if runtime_ok; then
		log "OCI runtime: $BUILDAH_RUNTIME"
	else
		log "runc fails too: $(head -n 1 "$workdir/err")"
		unset BUILDAH_RUNTIME
		export BUILDAH_ISOLATION=chroot
		runtime_ok || fail "buildah cannot run a container here, not even with --isolation chroot: $(cat "$workdir/err")"
		log "isolation: chroot (no OCI runtime works here)"
	fi
fi
buildah rm "$ctr" >/dev/null

# --- 3. build ----------------------------------------------------------------
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)
branch=$(git -C "$repo" rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
build_date=$(date -u +%Y%m%d-%H:%M:%S)

# build ARCH: buildah bud for linux/ARCH into $image-ARCH. --platform sets
# TARGETOS, TARGETARCH and TARGETPLATFORM (buildah 1.28 too) and the image's
# os and architecture; buildah 1.28 leaves BUILDPLATFORM empty (BuildKit
# fills it in), so it is passed. Cache mounts (RUN --mount=type=cache) live
# under TMPDIR: one private to this run ($workdir, removed at the end) that
# the builds share, so the second one finds the modules extracted.
build() {
	local arch=$1 secs=$SECONDS
	log "buildah bud --platform linux/$arch (revision $revision)"
	# (The log's lines carry the seconds since the start, so that the time
	# of each step can be told.)
	TMPDIR=$workdir buildah bud --pull=never --network host --layers=false \
		--platform "linux/$arch" --build-arg BUILDPLATFORM="linux/$goarch" \
		--volume "$host_proxy:$proxy_mount:ro" \
		--build-arg GO_IMAGE="$go_image" --build-arg BASE_IMAGE="$base_image" \
		--build-arg GOPROXY="file://$proxy_mount,$goproxy" --build-arg GOSUMDB="$gosumdb" \
		--build-arg GOPRIVATE="$goprivate" \
		--build-arg VERSION="$version" --build-arg REVISION="$revision" \
		--build-arg BRANCH="$branch" --build-arg BUILD_DATE="$build_date" \
		-f "$repo/Dockerfile" -t "$image-$arch" "$repo" 2>&1 | stamp >"$workdir/build-$arch.log" ||
		{
			tail -n 40 "$workdir/build-$arch.log" >&2
			fail "buildah bud --platform linux/$arch failed"
		}
	log "built $image-$arch in $((SECONDS - secs)) s: $(step_times "$workdir/build-$arch.log")"
}

# stamp: each line of stdin, after the seconds since the script's start.
stamp() {
	local line
	while IFS= read -r line; do
		printf '%d %s\n' "$SECONDS" "$line"
	done
}
# step_times LOG: the time of each RUN and COPY step of a stamped build log
# (from its line to the next step's, or the log's end).
step_times() {
	awk '
		function end(t) { if (name != "") { out = out sep name " " (t - from) " s"; sep = ", " } name = "" }
		{ t = $1 }
		/ STEP [0-9]+\/[0-9]+: / {
			end(t)
			line = $0
			sub(/^.* STEP [0-9]+\/[0-9]+: /, "", line)
			split(line, w, " ")
			if (w[1] == "RUN" || w[1] == "COPY") {
				name = line
				# A RUN step by the go command it runs.
				if (w[1] == "RUN" && match(name, /(^| )go (mod )?[a-z]+/)) name = substr(name, RSTART, RLENGTH)
				sub(/^ /, "", name)
				if (length(name) > 40) name = substr(name, 1, 40) "..."
				from = t
			}
		}
		{ last = t }
		END { end(last); print out }
	' "$1"
}

# --- 4. checks ---------------------------------------------------------------
expect() { # expect WHAT GOT WANT
	[[ $2 == "$3" ]] || fail "$1: got '$2', want '$3'"
	log "ok: $1 = $2"
}

# elf_check FILE ARCH: FILE is a 64-bit little-endian ELF executable for
# ARCH, static: type EXEC (not PIE), no PT_INTERP (no dynamic loader) and
# no PT_DYNAMIC (no shared libraries). Read from the ELF header and the
# program headers with od, which works for a foreign architecture's binary
# (ldd does not) and needs nothing beyond coreutils; od reads numbers in the
# host's byte order, little-endian like both platforms.
elf_check() {
	local f=$1 arch=$2 machine want i type
	u() { od -An -t "u$2" -j "$1" -N "$2" "$f" | tr -d ' '; } # u OFFSET SIZE
	case $arch in
	amd64) want=62 ;;  # EM_X86_64
	arm64) want=183 ;; # EM_AARCH64
	esac
	[[ $(od -An -c -N 4 "$f" | tr -d ' ') == '177ELF' ]] || fail "$arch: /bin/whatsapp_exporter is not an ELF file"
	expect "$arch: ELF class, data (2 = 64-bit, 1 = little-endian)" "$(u 4 1) $(u 5 1)" "2 1"
	machine=$(u 18 2)
	[[ $machine == "$want" ]] ||
		fail "$arch: /bin/whatsapp_exporter is for ELF machine $machine, not $want ($arch): was it built for the build platform instead of TARGETARCH?"
	log "ok: $arch: ELF machine $machine ($arch)"
	expect "$arch: ELF type (2 = EXEC, static; 3 = DYN, PIE or dynamic)" "$(u 16 2)" 2
	local phoff phentsize phnum
	phoff=$(u 32 8) phentsize=$(u 54 2) phnum=$(u 56 2)
	((phnum > 0)) || fail "$arch: no program headers"
	for ((i = 0; i < phnum; i++)); do
		type=$(u $((phoff + i * phentsize)) 4)
		((type != 3)) || fail "$arch: /bin/whatsapp_exporter has an interpreter (PT_INTERP): dynamically linked"
		((type != 2)) || fail "$arch: /bin/whatsapp_exporter has a dynamic section (PT_DYNAMIC): dynamically linked"
	done
	log "ok: $arch: static executable ($phnum program headers, no PT_INTERP, no PT_DYNAMIC)"
}

# check_image ARCH: everything that holds without running the image.
check_image() {
	local arch=$1 img=$image-$1
	inspect() { buildah inspect --type image --format "$1" "$img"; }
	expect "$arch: image os/architecture" "$(inspect '{{.OCIv1.OS}}/{{.OCIv1.Architecture}}')" "linux/$arch"
	expect "$arch: image os/architecture (Docker config)" "$(inspect '{{.Docker.OS}}/{{.Docker.Architecture}}')" "linux/$arch"
	expect "$arch: image user" "$(inspect '{{.OCIv1.Config.User}}')" "65532:65532"
	# (buildah's --format has no json function: one [element] per element.)
	expect "$arch: entrypoint" "$(inspect '{{range .OCIv1.Config.Entrypoint}}[{{.}}]{{end}}')" '[/bin/whatsapp_exporter]'
	expect "$arch: cmd" "$(inspect '{{range .OCIv1.Config.Cmd}}[{{.}}]{{end}}')" '[--config.file=/etc/whatsapp_exporter/whatsapp_exporter.yml]'
	# shellcheck disable=SC2016 # a Go template, not a shell expansion
	expect "$arch: exposed ports" "$(inspect '{{range $p, $v := .OCIv1.Config.ExposedPorts}}{{$p}} {{end}}')" "10040/tcp "

	# A container only to mount the image's files; --platform, else buildah
	# looks for an image of the host's platform under that name.
	ctr=$(buildah from --pull=never --platform "linux/$arch" --name "$ctr_prefix-$arch" "$img")
	root=$(buildah mount "$ctr")
	bin=$root/bin/whatsapp_exporter
	[[ -f $bin && -x $bin ]] || fail "$arch: no executable /bin/whatsapp_exporter in the image"
	elf_check "$bin" "$arch"
	local buildinfo want
	buildinfo=$("$go_bin" version -m "$bin") || fail "$arch: go version -m cannot read the build info of /bin/whatsapp_exporter"
	# (With -trimpath, Go leaves -ldflags out of the build info; the version
	# strings below show that they took effect.)
	for want in $'path\tgithub.com/whatsapp-exporter/whatsapp_exporter' $'build\tGOOS=linux' \
		$'build\tGOARCH='"$arch" $'build\tCGO_ENABLED=0' $'build\t-trimpath=true'; do
		grep -qxF -- "	$want" <<<"$buildinfo" || fail "$arch: build info lacks '$want':"$'\n'"$buildinfo"
	done
	log "ok: $arch: build info: GOOS=linux GOARCH=$arch CGO_ENABLED=0 -trimpath=true"
	# -X of a string variable stores the value verbatim in the binary's data.
	for want in "$version" "$revision" "$build_date"; do
		grep -qaF -- "$want" "$bin" || fail "$arch: /bin/whatsapp_exporter lacks '$want': the version ldflags did not take effect"
	done
	log "ok: $arch: version, revision and build date stamped"
	local certs
	certs=$(grep -c 'BEGIN CERTIFICATE' "$root/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true)
	((${certs:-0} >= 50)) || fail "$arch: CA bundle /etc/ssl/certs/ca-certificates.crt missing or small (${certs:-0} certificates)"
	log "ok: $arch: CA bundle with $certs certificates"
	grep -q '^nonroot:x:65532:65532:' "$root/etc/passwd" || fail "$arch: /etc/passwd lacks nonroot (65532)"
	log "ok: $arch: /etc/passwd has nonroot (65532)"
	rootfs_bytes=$(du -sb "$root" | cut -f1)
	bin_bytes=$(stat -c %s "$bin")
	buildah umount "$ctr" >/dev/null
}

# run_image ARCH: runs the image of the host's platform, in the container
# check_image made.
run_image() {
	local arch=$1 out
	out=$(buildah run --network host "$ctr" -- /bin/whatsapp_exporter --version 2>&1) ||
		fail "--version in the container failed: $out"
	grep -q "version $version (branch: $branch, revision: $revision)" <<<"$out" ||
		fail "--version printed: $out"
	log "ok: $arch: --version in the container: $(head -n 1 <<<"$out")"

	port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
	local port="" p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 30000))
		if port_free "$p"; then
			port=$p
			break
		fi
	done
	[[ -n $port ]] || fail "no free loopback port found"

	log "running --demo in the container on 127.0.0.1:$port"
	buildah run --network host "$ctr" -- /bin/whatsapp_exporter --demo \
		--web.listen-address="127.0.0.1:$port" >"$workdir/demo.log" 2>&1 &
	demo_job=$!
	local metrics=
	for _ in $(seq 60); do
		sleep 0.5
		kill -0 "$demo_job" 2>/dev/null || { cat "$workdir/demo.log" >&2; fail "the exporter exited early"; }
		metrics=$(curl -fsS --max-time 5 "http://127.0.0.1:$port/metrics" 2>/dev/null) || continue
		grep -q 'name="demo-shop"' <<<"$metrics" && break
	done
	grep -q "^whatsapp_exporter_build_info{.*version=\"$version\"" <<<"$metrics" ||
		{ cat "$workdir/demo.log" >&2; fail "/metrics has no whatsapp_exporter_build_info with version $version"; }
	grep -q 'name="demo-shop"' <<<"$metrics" ||
		{ cat "$workdir/demo.log" >&2; fail "/metrics has no series of the demo instances"; }
	log "ok: $arch: /metrics answers, $(grep -c '^whatsapp_' <<<"$metrics") whatsapp_* samples"

	demo_pid=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
	[[ -n $demo_pid ]] || fail "cannot find the process listening on port $port"
	local uids rc=0
	uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$demo_pid/status")
	expect "$arch: uids of the exporter process" "$uids" "65532 65532 65532 65532"

	kill -TERM "$demo_pid"
	for _ in $(seq 20); do
		kill -0 "$demo_pid" 2>/dev/null || break
		sleep 0.5
	done
	kill -0 "$demo_pid" 2>/dev/null && fail "the exporter did not stop within 10 s of SIGTERM"
	demo_pid=
	wait "$demo_job" || rc=$?
	demo_job=
	((rc == 0)) || { cat "$workdir/demo.log" >&2; fail "the exporter exited with $rc on SIGTERM"; }
	log "ok: $arch: stops cleanly on SIGTERM"
}

# The host's platform first: its run is the most telling check.
ordered=
[[ " $arches " != *" $goarch "* ]] || ordered=$goarch
for arch in $arches; do
	[[ $arch == "$goarch" ]] || ordered+=" $arch"
done
for arch in $ordered; do
	phase "build $arch"
	build "$arch"
	phase "check $arch"
	check_image "$arch"
	if [[ $arch == "$goarch" ]]; then
		run_image "$arch"
	else
		log "($arch: not run on this $goarch host; checked above without running)"
	fi
	buildah rm "$ctr" >/dev/null

	size=$(buildah images --format '{{.Size}}' "$image-$arch")
	# What a pull transfers: the layers compressed, as in a registry.
	buildah push --quiet "$image-$arch" "oci-archive:$workdir/image.tar" >/dev/null
	archive_bytes=$(stat -c %s "$workdir/image.tar")
	rm -f "$workdir/image.tar"
	log "$arch: image size $size; root file system $((rootfs_bytes / 1024)) KiB, of which the binary $((bin_bytes / 1024)) KiB; compressed (OCI archive) $((archive_bytes / 1024)) KiB"
done
phase cleanup
