#!/usr/bin/env bash
# Starts a 3-node masterkv group on loopback (HTTP 8081-8083, raft 7001-7003)
# with data under .data/cluster, in dev mode (no API tokens). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=./bin/raftnode
data=.data/cluster
peers="n1=127.0.0.1:7001=127.0.0.1:8081,n2=127.0.0.1:7002=127.0.0.1:8082,n3=127.0.0.1:7003=127.0.0.1:8083"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
  mkdir -p "$data/n$i"
  bootstrap=false
  [ "$i" = 1 ] && bootstrap=true
  MASTERKV_DEV=true MASTERKV_NODE_ID="n$i" MASTERKV_DATA_DIR="$data/n$i" \
  MASTERKV_RAFT_ADDR="127.0.0.1:700$i" MASTERKV_HTTP_ADDR="127.0.0.1:808$i" \
  MASTERKV_PEERS="$peers" MASTERKV_BOOTSTRAP="$bootstrap" \
    "$bin" 2>"$data/n$i.log" &
  pids+=($!)
done
echo "masterkv 3-node group: http://127.0.0.1:8081 8082 8083 (logs in $data/n*.log)"
echo "  curl -s -d cluster=mycluster -d host=10.0.0.12 -d port=3306 http://127.0.0.1:8082/v1/failover"
echo "  curl -s http://127.0.0.1:8083/v1/masters"
echo "Ctrl-C stops the group."
wait
