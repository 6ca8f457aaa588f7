#!/usr/bin/env bash
# Proves that the Dockerfile builds and that the image runs, without any
# container registry:
#
#  1. installs buildah (and, if needed, runc) from Debian when missing;
#  2. assembles two local stand-ins for the Dockerfile's base images, from
#     scratch and from files of this machine:
#       golang  - the host's Go toolchain (go env GOROOT) at /usr/local/go, a
#                 POSIX sh with its libraries, the CA bundle, /go, /tmp,
#                 set up like the official golang image;
#       static  - what gcr.io/distroless/static-debian12:nonroot holds that
#                 matters here: the CA bundle, /etc/passwd and /etc/group with
#                 nonroot (65532), nsswitch.conf, /tmp, /home/nonroot, and
#                 user 65532;
#  3. buildah bud with GO_IMAGE and BASE_IMAGE pointed at them (--pull=never).
#     The build stage downloads modules through GOPROXY as the host sees it,
#     on the host's network (--network host);
#  4. checks the image: config (user 65532, entrypoint, cmd, port 10040), a
#     static binary built with -trimpath and the version ldflags, the CA
#     bundle and the nonroot user; runs --version, then --demo on a free
#     loopback port, scrapes /metrics, checks that the process runs as uid
#     65532 and that it stops cleanly on SIGTERM;
#  5. removes every container, image and cache it made (also at the start,
#     left over from an interrupted run). KEEP_IMAGE=1 keeps the built image.
#
# Needs root (apt-get, rootful buildah). Exits non-zero on any failure.
set -Eeuo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
prefix=localhost/whatsapp-exporter-image-test
go_image=$prefix/golang:local
base_image=$prefix/static:nonroot
image=$prefix/whatsapp_exporter:test
ctr_prefix=whatsapp-exporter-image-test
version="image-test"
start=$SECONDS

log() { printf '==> %s\n' "$*" >&2; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

[[ $(uname -s) == Linux ]] || fail "needs Linux (buildah)"
[[ $(id -u) == 0 ]] || fail "needs root: it installs packages with apt-get and runs rootful buildah"

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
	local imgs=("$go_image" "$base_image")
	[[ ${KEEP_IMAGE:-} == 1 && ${1:-} == final ]] || imgs+=("$image")
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
	if ((rc == 0)); then
		log "PASS in $((SECONDS - start)) s"
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
log "host $("$go_bin" version), GOROOT $goroot, GOPROXY $goproxy"

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

log "assembling $base_image"
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
buildah commit --quiet --rm "$ctr" "$base_image" >/dev/null

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
log "buildah bud (revision $revision)"
build_start=$SECONDS
# Cache mounts (RUN --mount=type=cache) live under TMPDIR; a private one is
# removed with $workdir. buildah 1.28 (Debian 12) does not fill in the
# platform arguments as BuildKit does; they are passed like BuildKit would.
TMPDIR=$workdir buildah bud --pull=never --network host --layers=false \
	--build-arg GO_IMAGE="$go_image" --build-arg BASE_IMAGE="$base_image" \
	--build-arg GOPROXY="$goproxy" --build-arg GOSUMDB="$gosumdb" --build-arg GOPRIVATE="$goprivate" \
	--build-arg BUILDPLATFORM="linux/$goarch" --build-arg TARGETOS=linux --build-arg TARGETARCH="$goarch" \
	--build-arg VERSION="$version" --build-arg REVISION="$revision" \
	--build-arg BRANCH="$branch" --build-arg BUILD_DATE="$(date -u +%Y%m%d-%H:%M:%S)" \
	-f "$repo/Dockerfile" -t "$image" "$repo" >"$workdir/build.log" 2>&1 ||
	{
		tail -n 40 "$workdir/build.log" >&2
		fail "buildah bud failed"
	}
build_secs=$((SECONDS - build_start))
log "built $image in $build_secs s"

# --- 4. checks ---------------------------------------------------------------
inspect() { buildah inspect --type image --format "$1" "$image"; }
expect() { # expect WHAT GOT WANT
	[[ $2 == "$3" ]] || fail "$1: got '$2', want '$3'"
	log "ok: $1 = $2"
}
expect "image user" "$(inspect '{{.OCIv1.Config.User}}')" "65532:65532"
# (buildah's --format has no json function: one [element] per element.)
expect "entrypoint" "$(inspect '{{range .OCIv1.Config.Entrypoint}}[{{.}}]{{end}}')" '[/bin/whatsapp_exporter]'
expect "cmd" "$(inspect '{{range .OCIv1.Config.Cmd}}[{{.}}]{{end}}')" '[--config.file=/etc/whatsapp_exporter/whatsapp_exporter.yml]'
# shellcheck disable=SC2016 # a Go template, not a shell expansion
expect "exposed ports" "$(inspect '{{range $p, $v := .OCIv1.Config.ExposedPorts}}{{$p}} {{end}}')" "10040/tcp "

ctr=$(buildah from --pull=never --name "$ctr_prefix-run" "$image")
root=$(buildah mount "$ctr")
bin=$root/bin/whatsapp_exporter
[[ -x $bin ]] || fail "no executable /bin/whatsapp_exporter in the image"
ldd "$bin" >/dev/null 2>&1 && fail "/bin/whatsapp_exporter is dynamically linked: $(ldd "$bin")"
log "ok: /bin/whatsapp_exporter is a static executable"
buildinfo=$("$go_bin" version -m "$bin")
# (With -trimpath, Go leaves -ldflags out of the build info; --version
# below shows that they took effect.)
for want in 'build	CGO_ENABLED=0' 'build	-trimpath=true'; do
	grep -qF -- "$want" <<<"$buildinfo" || fail "build info lacks '$want':"$'\n'"$buildinfo"
done
log "ok: built with CGO_ENABLED=0 and -trimpath"
certs=$(grep -c 'BEGIN CERTIFICATE' "$root/etc/ssl/certs/ca-certificates.crt" 2>/dev/null || true)
((${certs:-0} >= 50)) || fail "CA bundle /etc/ssl/certs/ca-certificates.crt missing or small (${certs:-0} certificates)"
log "ok: CA bundle with $certs certificates"
grep -q '^nonroot:x:65532:65532:' "$root/etc/passwd" || fail "/etc/passwd lacks nonroot (65532)"
log "ok: /etc/passwd has nonroot (65532)"
rootfs_bytes=$(du -sb "$root" | cut -f1)
bin_bytes=$(stat -c %s "$bin")
buildah umount "$ctr" >/dev/null

out=$(buildah run --network host "$ctr" -- /bin/whatsapp_exporter --version 2>&1) ||
	fail "--version in the container failed: $out"
grep -q "version $version (branch: $branch, revision: $revision)" <<<"$out" ||
	fail "--version printed: $out"
log "ok: --version in the container: $(head -n 1 <<<"$out")"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=
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
metrics=
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
log "ok: /metrics answers, $(grep -c '^whatsapp_' <<<"$metrics") whatsapp_* samples"

demo_pid=$(ss -Hltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)
[[ -n $demo_pid ]] || fail "cannot find the process listening on port $port"
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$demo_pid/status")
expect "uids of the exporter process" "$uids" "65532 65532 65532 65532"

kill -TERM "$demo_pid"
for _ in $(seq 20); do
	kill -0 "$demo_pid" 2>/dev/null || break
	sleep 0.5
done
kill -0 "$demo_pid" 2>/dev/null && fail "the exporter did not stop within 10 s of SIGTERM"
demo_pid=
rc=0
wait "$demo_job" || rc=$?
demo_job=
((rc == 0)) || { cat "$workdir/demo.log" >&2; fail "the exporter exited with $rc on SIGTERM"; }
log "ok: stops cleanly on SIGTERM"
buildah rm "$ctr" >/dev/null

size=$(buildah images --format '{{.Size}}' "$image")
# What a pull transfers: the layers compressed, as in a registry.
buildah push --quiet "$image" "oci-archive:$workdir/image.tar" >/dev/null
archive_bytes=$(stat -c %s "$workdir/image.tar")
log "image size: $size; root file system $((rootfs_bytes / 1024)) KiB, of which the binary $((bin_bytes / 1024)) KiB; compressed (OCI archive) $((archive_bytes / 1024)) KiB"
log "build took $build_secs s"
