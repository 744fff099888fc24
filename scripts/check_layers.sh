#!/usr/bin/env bash
# Layers point one way (docs/architecture.md): a folder may include only
# its own headers and those of the layers below it. Prints every include
# that points up and exits 1 if there is one.
set -uo pipefail
cd "$(dirname "$0")/.."
declare -A allowed=(
  [util]="util"
  [spec]="util spec"
  [clients]="util spec clients"
  [sources]="util spec clients sources"
  [destinations]="util spec clients destinations"
  [engine]="util spec clients sources destinations engine"
  [server]="util spec clients sources destinations engine server"
  [cli]="util spec clients sources destinations engine server cli"
)
bad=0
for layer in "${!allowed[@]}"; do
  for f in src/"$layer"/*.[ch]; do
    [ -e "$f" ] || continue
    while IFS= read -r line; do
      inc=${line#*\"}
      dir=${inc%%/*}
      case " ${allowed[$layer]} " in
        *" $dir "*) ;;
        *) echo "$f: includes \"${inc%\"}\": $layer may include only: ${allowed[$layer]}"; bad=1 ;;
      esac
    done < <(grep -E '^#include "[a-z]+/' "$f")
  done
done
for d in src/*/; do
  d=${d%/}; d=${d#src/}
  [ -n "${allowed[$d]:-}" ] || { echo "src/$d: a folder outside the layers"; bad=1; }
done
[ $bad -eq 0 ] && echo "layers: every include points down"
exit $bad
