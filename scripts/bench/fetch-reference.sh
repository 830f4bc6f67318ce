#!/usr/bin/env bash
# Fetches the benchmark's reference peer, Rudrabha/Wav2Lip at the pinned commit, into DEST (default
# <repo>/.bench/wav2lip-ref, git-ignored: the reference is never committed here). Clones the
# repository bare into a temporary folder, checks that the commit is there and extracts exactly that
# commit's tree (git archive); DEST is replaced only once the extraction succeeded.
# Usage: fetch-reference.sh [DEST]
# Env: WAV2LIP_GIT (https://github.com/Rudrabha/Wav2Lip.git; a local clone or bare mirror also works).
set -euo pipefail

commit=5c90fa9b4a2c2a37d0b4ebf7633ac41534eb9941
(( $# <= 1 )) || { sed -n 2,7p "$0" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dest=${1:-$repo/.bench/wav2lip-ref}
source_git=${WAV2LIP_GIT:-https://github.com/Rudrabha/Wav2Lip.git}
command -v git >/dev/null || { echo "fetch-reference: git not found" >&2; exit 1; }

mkdir -p "$(dirname "$dest")"
dest=$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")
tmp=$(mktemp -d "$(dirname "$dest")/.fetch-reference.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "fetch-reference: cloning $source_git"
git clone --bare --quiet "$source_git" "$tmp/git" ||
  { echo "fetch-reference: could not clone $source_git (no network? set WAV2LIP_GIT to a local clone)" >&2; exit 1; }
[[ $(git -C "$tmp/git" cat-file -t "$commit" 2>/dev/null) == commit ]] ||
  { echo "fetch-reference: $source_git has no commit $commit" >&2; exit 1; }
mkdir "$tmp/tree"
git -C "$tmp/git" archive "$commit" | tar -x -C "$tmp/tree"
for needed in inference.py audio.py hparams.py models/wav2lip.py face_detection/detection/sfd/net_s3fd.py; do
  [[ -f $tmp/tree/$needed ]] || { echo "fetch-reference: $commit has no $needed" >&2; exit 1; }
done
rm -rf "$dest"
mv "$tmp/tree" "$dest"
echo "fetch-reference: Rudrabha/Wav2Lip $commit in $dest"
