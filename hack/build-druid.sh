#!/usr/bin/env bash
# Resolve (or reuse) the class path of a real Apache Druid Coordinator + druid-basic-security from Maven
# Central, for the contract tests (testing/src/druid_access/testing/druid.py), into a cache outside the checkout:
#   ${DRUID_ACCESS_CACHE:-$HOME/.cache/druid-access}/druid/<version>/lib/*.jar
# The version is druid.version in druid/pom.xml (override: DRUID_VERSION=...). Maven downloads into the
# normal local repository (~/.m2/repository; DRUID_ACCESS_M2_REPO=DIR uses another one). druid/settings.xml
# mirrors every repository to Central, because Druid's parent pom names repositories that are not reachable
# here (DRUID_ACCESS_MAVEN_SETTINGS=FILE uses other settings). A small launcher (druid/launcher) is compiled
# with javac into lib/druid-access-launcher.jar: see its source for why Druid's own Main cannot be used.
# Versions: 27.0.0 (the pom's default) and 37.0.0. For 37.x the pom's profile "druid-37" (activated by
# -Ddruid.version=37.0.0) leaves out druid-sql and druid-multi-stage-query, which Central does not serve,
# and the empty MSQ Guice modules under druid/launcher/msq-stubs are compiled into the launcher jar in
# their place (docs/druid-versions.md); both apply to exactly 37.0.0. Other versions get the plain pom.
# The lib dir is built in a dot-prefixed temp dir and renamed into place only when complete; a build whose
# inputs (pom, settings, launcher and, for 37.x, the MSQ stubs) differ from the cached ones replaces it.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
druid_dir="$repo_root/druid"
pom="$druid_dir/pom.xml"
settings="${DRUID_ACCESS_MAVEN_SETTINGS:-$druid_dir/settings.xml}"
launcher_src="$druid_dir/launcher/CoordinatorMain.java"
cache_root="${DRUID_ACCESS_CACHE:-$HOME/.cache/druid-access}/druid"
m2_repo="${DRUID_ACCESS_M2_REPO:-$HOME/.m2/repository}"

for tool in mvn java javac jar; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is not on PATH; install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless) and Maven" >&2
        exit 1
    fi
done
java_major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p')
if [[ $java_major != 17 ]]; then
    # Druid 27 supports Java 8, 11 and 17, Druid 37 11 and 17; the launcher flags in druid.py are the Java 17 ones.
    echo "warning: java on PATH is Java ${java_major:-?}; Druid is tested here with Java 17" >&2
fi

version="${DRUID_VERSION:-$(sed -n 's:.*<druid\.version>\(.*\)</druid\.version>.*:\1:p' "$pom" | head -n1)}"
if [[ ! $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    echo "error: cannot read druid.version from $pom (got '$version')" >&2
    exit 1
fi
dest="$cache_root/$version"
# Sources compiled into the launcher jar besides CoordinatorMain.java, by version.
extra_src=()
case $version in
    37.0.0) mapfile -t extra_src < <(find "$druid_dir/launcher/msq-stubs" -name '*.java' | LC_ALL=C sort) ;;
esac
stamp=$(cat "$pom" "$settings" "$launcher_src" "${extra_src[@]}" | sha256sum | cut -c1-16)

report() {
    local jars size
    jars=$(find "$dest/lib" -maxdepth 1 -name '*.jar' | wc -l)
    size=$(du -sm "$dest/lib" | cut -f1)
    echo "druid $version: $jars jars, ${size} MiB in $dest/lib"
}

if [[ -f $dest/lib/druid-services-$version.jar && -f $dest/lib/druid-access-launcher.jar &&
    "$(cat "$dest/.inputs" 2>/dev/null)" == "$stamp" ]]; then
    echo "reusing $dest"
    report
    exit 0
fi

tmp=""
cleanup() { [[ -z $tmp ]] || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT # turn signals into a normal exit so the EXIT trap removes the temp dir
trap 'exit 143' TERM

mkdir -p "$cache_root"
# Temp dirs left by a killed build (EXIT traps do not run on SIGKILL).
find "$cache_root" -mindepth 1 -maxdepth 1 -name '.tmp-*' -mmin +1440 -exec rm -rf {} +
tmp=$(mktemp -d "$cache_root/.tmp-$version.XXXXXX")

m2_before=$(du -sb "$m2_repo" 2>/dev/null | cut -f1 || echo 0)
m2_before=${m2_before:-0}
started=$SECONDS
echo "resolving Druid $version (druid-services runtime closure + druid-basic-security) with Maven..."
cp "$pom" "$tmp/pom.xml"
mvn_args=(-B -q -Dstyle.color=never -f "$tmp/pom.xml" -s "$settings" "-Ddruid.version=$version")
[[ -z ${DRUID_ACCESS_M2_REPO:-} ]] || mvn_args+=("-Dmaven.repo.local=$m2_repo")
if ! mvn "${mvn_args[@]}" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
    echo "error: Maven could not resolve Druid $version; its output:" >&2
    sed 's/\x1b\[[0-9;]*m//g' "$tmp/mvn.log" | grep -E '^\[(ERROR|WARNING)\] .' >&2 || tail -n 40 "$tmp/mvn.log" >&2
    exit 1
fi
resolved=$SECONDS

echo "compiling the Coordinator launcher${extra_src[*]:+ and ${#extra_src[@]} MSQ stand-ins}..."
javac -nowarn -d "$tmp/classes" -cp "$tmp/lib/*" "$launcher_src" "${extra_src[@]}"
jar cf "$tmp/lib/druid-access-launcher.jar" -C "$tmp/classes" .
rm -rf "$tmp/classes" "$tmp/pom.xml" "$tmp/mvn.log"
printf '%s\n' "$stamp" >"$tmp/.inputs"
chmod 755 "$tmp"

# rename(2) is atomic; an outdated build is moved aside first and removed after.
if [[ -e $dest ]]; then
    old=$(mktemp -d "$cache_root/.tmp-old-$version.XXXXXX")
    mv -T "$dest" "$old/d"
    mv -T "$tmp" "$dest" && tmp=""
    rm -rf "$old"
elif mv -T "$tmp" "$dest" 2>/dev/null; then
    tmp=""
else
    echo "another build finished first; using $dest"
fi

m2_after=$(du -sb "$m2_repo" 2>/dev/null | cut -f1 || echo 0)
echo "resolved in $((resolved - started)) s, total $((SECONDS - started)) s;" \
    "downloaded into $m2_repo: $(((${m2_after:-0} - m2_before) / 1048576)) MiB" \
    "(now $((${m2_after:-0} / 1048576)) MiB)"
report
