/** Process figures from /proc: CPU seconds (user+sys) and resident memory. Linux only. */
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User+system CPU seconds of `pid`, or NaN when unreadable. */
export function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS;
  } catch {
    return NaN;
  }
}

function statusKb(pid, key) {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** Resident set size in MB. */
export const rssMb = (pid) => statusKb(pid, 'VmRSS') / 1024;
/** Peak resident set size in MB. */
export const peakRssMb = (pid) => statusKb(pid, 'VmHWM') / 1024;

/** The sum over a process and its children (nginx workers), for CPU and memory. */
export function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
