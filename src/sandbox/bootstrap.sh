# Runs first in every job container, as: sh -c "$THIS" cb <run command and args...>
# Its stdin carries, in order: a nonce line; the program's CPU limit in whole seconds; its
# process limit ("-" for none: under runc the pids cgroup does it); the compile time limit in
# seconds ("-" for none);
# the cap on each compile stream in bytes; the compile command (one line, may be empty); each
# file as "<size> <name>\n" then exactly <size> bytes; a line "-"; then the job's own stdin.
# This puts code in without any host mount.
IFS= read -r nonce || exit 120
IFS= read -r cpu_limit || exit 120
IFS= read -r nproc || exit 120
IFS= read -r compile_limit || exit 120
IFS= read -r compile_cap || exit 120
IFS= read -r compile_command || exit 120
while IFS=' ' read -r size name; do
  [ "$size" = - ] && break
  case "$name" in */*) mkdir -p "${name%/*}" || exit 121 ;; esac
  if [ "$size" -gt 0 ]; then
    dd bs="$size" count=1 iflag=fullblock of="$name" status=none || exit 121
  else
    : > "$name" || exit 121
  fi
done

# Compile output goes to files and is reported as one block at the start of stderr:
# "\036<nonce> compile <exit> <ms> <out bytes> <err bytes> <out total> <err total>\n" + bytes.
if [ "$compile_limit" != - ]; then
  start=$(date +%s%N)
  timeout -k 1 "$compile_limit" sh -c "$compile_command" </dev/null >/tmp/.cb-out 2>/tmp/.cb-err
  code=$?
  end=$(date +%s%N)
  out_total=$(wc -c </tmp/.cb-out)
  err_total=$(wc -c </tmp/.cb-err)
  out=$(( out_total < compile_cap ? out_total : compile_cap ))
  err=$(( err_total < compile_cap ? err_total : compile_cap ))
  printf '\036%s compile %s %s %s %s %s %s\n' "$nonce" "$code" "$(( (end - start) / 1000000 ))" \
    "$out" "$err" "$out_total" "$err_total" >&2
  head -c "$out" /tmp/.cb-out >&2
  head -c "$err" /tmp/.cb-err >&2
  rm -f /tmp/.cb-out /tmp/.cb-err
  [ "$code" -eq 0 ] || exit 0
fi

# CPU time of the container's cgroup in ns (v1 or v2), without forking; "-" where the
# runtime shows no cgroup files (gVisor).
cpu_ns() {
  cpu=-
  { read -r cpu < /sys/fs/cgroup/cpuacct/cpuacct.usage; } 2>/dev/null && return
  { while read -r key value; do
      [ "$key" = usage_usec ] && cpu=${value}000
    done < /sys/fs/cgroup/cpu.stat; } 2>/dev/null
}

cpu_ns; cpu_before=$cpu
# The program alone gets the CPU limit: SIGXCPU at the limit, SIGKILL a second later.
# Under gVisor the process limit is RLIMIT_NPROC, which its kernel enforces per sandbox.
( { [ "$nproc" = - ] || ulimit -p "$nproc"; } \
  && ulimit -S -t "$cpu_limit" && ulimit -H -t $(( cpu_limit + 1 )) && exec "$@" )
code=$?
# Nothing the job started outlives it, and nothing can write after the report below.
kill -9 -1 2>/dev/null
cpu_ns
[ "$cpu" = - ] || [ "$cpu_before" = - ] || cpu=$(( cpu - cpu_before ))
peak=-
{ read -r peak < /sys/fs/cgroup/memory/memory.max_usage_in_bytes; } 2>/dev/null \
  || { read -r peak < /sys/fs/cgroup/memory.peak; } 2>/dev/null
# Kills by the kernel's OOM killer in this container (any process of the job), so that the
# node need not ask Docker.
oom=-
{ while read -r key value; do
    [ "$key" = oom_kill ] && oom=$value
  done < /sys/fs/cgroup/memory/memory.oom_control; } 2>/dev/null \
  || { while read -r key value; do
    [ "$key" = oom_kill ] && oom=$value
  done < /sys/fs/cgroup/memory.events; } 2>/dev/null
# Last on each stream: once the node has both, it has everything and need not wait for the
# container to stop.
printf '\036%s\n' "$nonce"
printf '\036%s %s %s %s %s\n' "$nonce" "$code" "$peak" "$cpu" "$oom" >&2
exit "$code"
