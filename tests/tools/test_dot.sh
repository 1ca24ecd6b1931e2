#!/bin/sh
# test_dot.sh — `nnc dump --format=dot` draws the graph IR and the fused kernels (docs/cli.md):
# the DOT has one cluster per kernel and one node per op of the text dump (same %ids and op
# names), Graphviz renders it to a PNG, and bad stage/format combinations are usage errors.
#   usage: tests/tools/test_dot.sh BUILD/nnc SOURCE_DIR
set -u
NNC=${1:?usage: test_dot.sh NNC SOURCE_DIR}
SRC=${2:?usage: test_dot.sh NNC SOURCE_DIR}
TMP=$(mktemp -d /tmp/nnc_dot_XXXXXX)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

command -v dot >/dev/null 2>&1 || { echo "FAIL: Graphviz 'dot' not found (scripts/setup.sh installs graphviz)"; exit 1; }

for model in "$SRC/examples/realnvp.nn" "$SRC/examples/mask_rcnn.nn" "$SRC/tests/golden/ops_softmax/model.nn"; do
  name=$(basename "$(dirname "$model")")_$(basename "$model" .nn)
  for stage in ir opt fused; do
    "$NNC" dump --stage=$stage --format=dot "$model" >"$TMP/$name.$stage.dot" 2>"$TMP/err" ||
      { fail "dump --stage=$stage --format=dot $model: $(cat "$TMP/err")"; continue; }
    "$NNC" dump --stage=$stage "$model" >"$TMP/$name.$stage.txt" || fail "text dump of $model"
    # every op of the text dump is a node labelled "%ID op" (leaves are drawn by name instead;
    # the DOT also draws the views the fused text dump leaves out)
    grep -E '^  %[0-9]+ = ' "$TMP/$name.$stage.txt" | grep -vE '= (input|param|const|dimval) ' |
      sed -E 's/^  (%[0-9]+) = ([a-z_]+).*/\1 \2/' | sort -u >"$TMP/ops.want"
    grep -oE 'label="%[0-9]+ [a-z_]+' "$TMP/$name.$stage.dot" | sed 's/^label="//' | sort -u >"$TMP/ops.got"
    missing=$(comm -23 "$TMP/ops.want" "$TMP/ops.got")
    [ -z "$missing" ] || fail "$name $stage: ops of the text dump missing in the DOT: $(echo $missing | head -c 200)"
    [ $stage = fused ] || cmp -s "$TMP/ops.want" "$TMP/ops.got" ||
      { fail "$name $stage: DOT ops differ from the text dump:"; diff "$TMP/ops.want" "$TMP/ops.got" | head -5; }
    entries=$(grep -c '^entry ' "$TMP/$name.$stage.txt")
    [ "$(grep -c 'subgraph cluster_e[0-9]* {' "$TMP/$name.$stage.dot")" -eq "$entries" ] ||
      fail "$name $stage: expected one cluster per entry ($entries)"
    if [ $stage = fused ]; then
      kernels=$(grep -c '^  kernel [0-9]' "$TMP/$name.$stage.txt")
      got=$(grep -c 'subgraph cluster_e[0-9]*_k[0-9]* {' "$TMP/$name.$stage.dot")
      [ "$got" -eq "$kernels" ] || fail "$name: $got kernel clusters, the text dump has $kernels kernels"
      grep -q 'label="kernel 0: ' "$TMP/$name.$stage.dot" || fail "$name: kernel clusters are not labelled"
    else
      ! grep -q 'cluster_e[0-9]*_k' "$TMP/$name.$stage.dot" || fail "$name $stage: kernels before fusion"
    fi
    grep -qE 'f32\[(N|B|[0-9]+)' "$TMP/$name.$stage.dot" || fail "$name $stage: no tensor shapes in the labels"
    dot -Tpng "$TMP/$name.$stage.dot" -o "$TMP/$name.$stage.png" 2>"$TMP/err" ||
      fail "dot -Tpng $name.$stage.dot: $(cat "$TMP/err")"
    # a PNG starts with \211PNG\r\n\032\n
    [ "$(head -c 8 "$TMP/$name.$stage.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
      fail "$name.$stage.png is not a PNG"
  done
done
grep -q 'label="layers.0.s.0.weight' "$TMP/examples_realnvp.fused.dot" || fail "parameters are not named"

# a run-time loop: the scan body is a cluster of its own, linked from the scan op
cat >"$TMP/scan.nn" <<'NN'
cell = LSTMCell(3, 4)
export run(x: f32[B, T, 3]) -> (hs: f32[B, T, 4]) {
  h = zeros(B, 4)
  c = zeros(B, 4)
  hs = zeros(B, T, 4)
  scan t in 0..T {
    h, c = cell(x[:, t], [h, c])
    hs[:, t] = h
  }
}
NN
if "$NNC" dump --stage=fused --format=dot "$TMP/scan.nn" >"$TMP/scan.dot" 2>"$TMP/err"; then
  grep -q 'label="scan body ' "$TMP/scan.dot" || fail "scan: no cluster for the scan body"
  grep -q 'style=dotted, label="runs"' "$TMP/scan.dot" || fail "scan: no edge from the scan op to its body"
  grep -q 'kernel [0-9]*: scan ' "$TMP/scan.dot" || fail "scan: the loop kernel is not labelled"
  dot -Tpng "$TMP/scan.dot" -o "$TMP/scan.png" || fail "dot -Tpng scan.dot"
else
  fail "dump of a scan model: $(cat "$TMP/err")"
fi

expect_usage() {
  "$NNC" "$@" >"$TMP/out" 2>&1
  rc=$?
  [ $rc -eq 2 ] || { fail "nnc $* -> exit $rc, want 2"; sed 's/^/  | /' "$TMP/out"; }
}
expect_usage dump --stage=llvm --format=dot "$SRC/examples/realnvp.nn"
expect_usage dump --stage=fused --format=svg "$SRC/examples/realnvp.nn"
expect_usage dump --stage=fused --format "$SRC/examples/realnvp.nn"

[ $failures -eq 0 ] && echo "test_dot: all checks passed"
exit $((failures > 0))
