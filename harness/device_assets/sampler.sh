# harness telemetry sampler (harness/device_assets/sampler.sh): one line per interval, on one stream.
# Runs under Android's mksh as the shell user (uid 2000); POSIX sh + shell builtins only: no
# awk, no forks per sample (`read` on /proc and /sys files, `read -t` as the clock).
# Sent inline by harness/run/telemetry.py as `set -- ARGS; <this text>`.
#
# Arguments: INTERVAL_S TARGET_PID [MAX_S] [SLOW_EVERY]
#   INTERVAL_S  seconds between samples (fractions allowed: 0.1)
#   TARGET_PID  the step's run wrapper (harness/device/background.py); its process tree is
#               measured, and the sampler ends when it is gone
#   MAX_S       hard limit on the sampler's life (default one day)
#   SLOW_EVERY  thermal zones (and the /proc scan when children files are absent) are read
#               every SLOW_EVERY samples (default 5)
# stdin is the control channel: a line ("q") asks for a last sample and the end; end of file
# (the host went away) ends the sampler too. With no stdin at all it sleeps between samples.
#
# Output (harness/run/telemetry.py parses it; unknown keys are ignored there):
#   # harness-sampler 1 pid=P interval=S target=T     once, first
#   # zone N TYPE | # policy N CPUINFO_MAX_KHZ | # gpu busy|clock FILE   the sources found
#   # skip SOURCE REASON                                each unreadable source, once
#   S UPTIME key=value ... ;                            a sample (UPTIME from /proc/uptime;
#                                                       the ";" shows the line is whole)
#   # end REASON                                        last
# Sample keys: mem (MemAvailable kB), rss hwm swap (kB, summed over the tree) n (processes),
# psi_some psi_full (avg10 %) psi_some_total psi_full_total (us), cur (current_now raw),
# volt (voltage_now raw), bst (battery status word), zN (thermal_zoneN/temp raw), curN maxN
# (policyN scaling_cur_freq / scaling_max_freq kHz), gpu_busy (%), gpubusy (busy,total),
# gpuclk (Hz), gpu_mhz (MHz).
iv=${1:-0.1}; target=${2:-0}; max_s=${3:-86400}; slow=${4:-5}
B=/sys/class/power_supply/battery; K=/sys/class/kgsl/kgsl-3d0
echo "# harness-sampler 1 pid=$$ interval=$iv target=$target"
# A source that cannot be read says so on stdout, once; the shell's own complaints about it
# (per read) are not wanted: stderr is dropped once here rather than per read (one open less).
exec 2>/dev/null
ok() { v=; read -r v < "$1"; [ -n "$v" ]; }
skip() { echo "# skip $1 ${2:-unreadable}"; }
# ---- sources, probed once ----------------------------------------------------------------
ok /proc/meminfo && have_mem=1 || skip /proc/meminfo
ok /proc/pressure/memory && have_psi=1 || skip /proc/pressure/memory
if [ -d "/proc/$target" ]; then :; else skip "/proc/$target" "no such process"; fi
ok "/proc/$target/status" || skip "/proc/$target/status"
kids=0; [ -r "/proc/$target/task/$target/children" ] && kids=1
[ "$kids" = 1 ] || skip "/proc/$target/task/$target/children" "absent; scanning /proc/*/stat"
ok $B/current_now && have_cur=1 || skip $B/current_now
ok $B/voltage_now && have_volt=1 || skip $B/voltage_now
ok $B/status && have_bst=1 || skip $B/status
zones=
for z in /sys/class/thermal/thermal_zone*; do
    [ -d "$z" ] || continue
    n=${z##*thermal_zone}
    if ok "$z/temp"; then
        t=; read -r t < "$z/type"
        zones="$zones $n"; echo "# zone $n ${t:-zone$n}"
    else
        skip "$z/temp"
    fi
done
policies=
for p in /sys/devices/system/cpu/cpufreq/policy*; do
    [ -d "$p" ] || continue
    n=${p##*policy}
    if ok "$p/scaling_cur_freq" && ok "$p/scaling_max_freq"; then
        m=; read -r m < "$p/cpuinfo_max_freq"
        policies="$policies $n"; echo "# policy $n ${m:-0}"
    else
        skip "$p/scaling_cur_freq"
    fi
done
gbusy=; gclock=
for f in gpu_busy_percentage gpubusy; do
    if [ -z "$gbusy" ] && ok "$K/$f"; then gbusy=$f; echo "# gpu busy $K/$f"; fi
done
for f in clock_mhz gpuclk; do
    if [ -z "$gclock" ] && ok "$K/$f"; then gclock=$f; echo "# gpu clock $K/$f"; fi
done
[ -n "$gbusy" ] || skip "$K/gpu_busy_percentage" "unreadable (and gpubusy)"
[ -n "$gclock" ] || skip "$K/clock_mhz" "unreadable (and gpuclk)"
# ---- the process tree ----------------------------------------------------------------------
pids=$target
tree() {
    if [ "$kids" = 1 ]; then
        pids=$target; front=$target
        while [ -n "$front" ]; do
            next=
            for q in $front; do
                c=; read -r c < "/proc/$q/task/$q/children"
                next="$next $c"
            done
            set -- $next; front=$*; pids="$pids $front"
        done
    else
        # The wrapper leads its own session (setsid): its tree is that session.
        pids=$target
        for s in /proc/[0-9]*/stat; do
            l=; read -r l < "$s" || continue
            set -- ${l##*) }
            if [ "${4:-}" = "$target" ]; then c=${s#/proc/}; pids="$pids ${c%/stat}"; fi
        done
    fi
}
# ---- the loop ------------------------------------------------------------------------------
read -r up _ < /proc/uptime
end=$(( ${up%.*} + max_s ))
wait_mode=read; i=0; why=max-time; temps=
while :; do
    read -r up _ < /proc/uptime
    line="S $up"
    if [ -n "$have_mem" ]; then
        while read -r k v _; do
            if [ "$k" = MemAvailable: ]; then line="$line mem=$v"; break; fi
        done < /proc/meminfo
    fi
    if [ "$kids" = 1 ] || [ $((i % slow)) = 0 ]; then tree; fi
    rss=0; hwm=0; sw=0; np=0
    for q in $pids; do
        while read -r k v _; do
            case $k in
                VmHWM:) hwm=$((hwm + v)) ;;
                VmRSS:) rss=$((rss + v)); np=$((np + 1)) ;;
                VmSwap:) sw=$((sw + v)); break ;;
            esac
        done < "/proc/$q/status"
    done
    line="$line rss=$rss hwm=$hwm swap=$sw n=$np"
    if [ -n "$have_psi" ]; then
        while read -r kind a10 _ _ tot; do
            line="$line psi_$kind=${a10#avg10=} psi_${kind}_total=${tot#total=}"
        done < /proc/pressure/memory
    fi
    if [ -n "$have_cur" ] && ok $B/current_now; then line="$line cur=$v"; fi
    if [ -n "$have_volt" ] && ok $B/voltage_now; then line="$line volt=$v"; fi
    if [ -n "$have_bst" ] && ok $B/status; then set -- $v; line="$line bst=$1"; fi
    if [ $((i % slow)) = 0 ]; then
        temps=
        for n in $zones; do
            ok "/sys/class/thermal/thermal_zone$n/temp" && temps="$temps z$n=$v"
        done
    fi
    line="$line$temps"
    for n in $policies; do
        p=/sys/devices/system/cpu/cpufreq/policy$n
        ok $p/scaling_cur_freq && line="$line cur$n=$v"
        ok $p/scaling_max_freq && line="$line max$n=$v"
    done
    if [ -n "$gbusy" ] && ok "$K/$gbusy"; then
        set -- $v
        if [ "$gbusy" = gpubusy ]; then line="$line gpubusy=$1,${2:-0}"
        else line="$line gpu_busy=${1%\%}"; fi
    fi
    if [ -n "$gclock" ] && ok "$K/$gclock"; then
        if [ "$gclock" = gpuclk ]; then line="$line gpuclk=$v"; else line="$line gpu_mhz=$v"; fi
    fi
    echo "$line ;"
    i=$((i + 1))
    [ -d "/proc/$target" ] || { why=target-gone; break; }
    [ "${up%.*}" -lt "$end" ] || break
    if [ "$wait_mode" = read ]; then
        read -t "$iv" _; rc=$?
        if [ "$rc" = 0 ]; then why=asked; break; fi
        if [ "$rc" -le 128 ]; then
            [ "$i" = 1 ] || { why=stdin-closed; break; }
            wait_mode=sleep  # no stdin from the start: sleep between samples instead
        fi
    else
        sleep "$iv"
    fi
done
echo "# end $why"
