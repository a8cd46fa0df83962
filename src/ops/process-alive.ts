// Whether a process still runs, by its pid (a lock's or a temporary file's owner).

/** True when PID names a running process (one we may not signal counts: it runs). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
