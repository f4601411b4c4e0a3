#!/usr/bin/env bash
# Prepare a fresh machine to build, test and benchmark Canopy. Idempotent: re-running is cheap.
#
#   bash scripts/setup.sh            # Node deps (pnpm through corepack), build
#   bash scripts/setup.sh --system   # also system packages for the tests: Mesa lavapipe (a CPU
#                                    # Vulkan driver, so WebGPU tests run without a GPU) and Chromium
#
# Needs Node.js >= 20.19. System packages need root (apt-get, Debian bookworm or newer).
set -euo pipefail
cd "$(dirname "$0")/.."

want_system=0
for a in "$@"; do [ "$a" = "--system" ] && want_system=1; done

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# --- Node.js ---------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1; then
  echo "setup: Node.js >= 20.19 is required (https://nodejs.org) and was not found on PATH" >&2
  exit 1
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("setup: Node.js >= 20.19 required, found "+process.version); process.exit(1) }'

# --- pnpm (the version pinned in package.json's packageManager) ------------------------------
pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$pnpm_version" ]; then
  say "installing pnpm $pnpm_version"
  # corepack's signature check fails on some machines ("No compatible signature found");
  # COREPACK_INTEGRITY_KEYS=0 skips it. If corepack is unusable, fall back to npm.
  if command -v corepack >/dev/null 2>&1 && COREPACK_INTEGRITY_KEYS=0 corepack enable pnpm 2>/dev/null \
     && COREPACK_INTEGRITY_KEYS=0 COREPACK_ENABLE_DOWNLOAD_PROMPT=0 pnpm --version >/dev/null 2>&1 \
     && [ "$(COREPACK_INTEGRITY_KEYS=0 pnpm --version)" = "$pnpm_version" ]; then
    :
  else
    npm install -g --silent "pnpm@$pnpm_version" || {
      echo "setup: could not install pnpm@$pnpm_version (corepack and npm both failed)" >&2; exit 1; }
  fi
fi
export COREPACK_INTEGRITY_KEYS=0 COREPACK_ENABLE_DOWNLOAD_PROMPT=0

# --- system packages (tests) -----------------------------------------------------------------
need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "setup: installing $1 needs root. Run as root, or install it yourself: $2" >&2
    return 1
  fi
}
mesa_major() { dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | sed -E 's/^([0-9]+).*/\1/' ; }

if [ "$want_system" = 1 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: --system supports Debian/Ubuntu (apt-get). Install a Vulkan driver (Mesa lavapipe >= 24) and Chromium yourself." >&2
    exit 1
  fi
  m=$(mesa_major || true)
  if [ -z "$m" ] || [ "$m" -lt 24 ]; then
    need_root "Mesa lavapipe" "apt-get install -t bookworm-backports mesa-vulkan-drivers" || exit 1
    . /etc/os-release
    suite=""
    if [ "${VERSION_CODENAME:-}" = bookworm ]; then
      # bookworm's own Mesa 22.3 is refused by Dawn; backports carries 25.x.
      suite="-t bookworm-backports"
      if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
        say "adding Debian bookworm-backports (for Mesa 25 lavapipe)"
        printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
          > /etc/apt/sources.list.d/canopy-bookworm-backports.sources
      fi
    fi
    say "installing Mesa lavapipe (Vulkan on the CPU, for WebGPU tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $suite mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
  if ! command -v chromium >/dev/null 2>&1; then
    need_root "Chromium" "apt-get install chromium" || exit 1
    say "installing Chromium (browser tests)"
    [ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -600 2>/dev/null | head -1)" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi

# --- workspace -------------------------------------------------------------------------------
say "installing Node packages"
if [ -n "${CI:-}" ]; then pnpm install --frozen-lockfile --reporter=silent; else pnpm install --reporter=silent; fi
say "building"
pnpm exec turbo run build --output-logs=errors-only
# The CUDA addon builds only where nvcc exists (no GPU needed to build); elsewhere it says why not.
pnpm --filter @canopy/backend-cuda run --silent build:native:if-available
