// Whether this host's links or addresses may have changed since a caller last looked: route netlink
// notifications (the addon's netwatch), drained on each look. The daemon's checks (the interface
// MTU that wg-quick sets after start, the interface addresses that say the host moved networks) used
// to read sysfs and list every address on each tick: 0.3–2 ms of an idle daemon's main thread a
// second, in the way of whatever packet arrived meanwhile. Without the addon or the socket, every
// look says "maybe" and the callers check for themselves, as before.
import { loadNative, type NativeAddon } from '../tun/native.js';

export class NetworkWatch {
  private readonly addon: NativeAddon | null;
  private fd = -1;
  private gen = 0;

  constructor() {
    let addon: NativeAddon | null = null;
    try {
      addon = loadNative();
    } catch {
      // no addon: no notifications (every look is a change)
    }
    this.addon = addon && typeof addon.netwatchOpen === 'function' ? addon : null;
    if (this.addon) this.fd = this.addon.netwatchOpen();
  }

  /** Whether notifications arrive; false: every look counts as a change. */
  get notified(): boolean {
    return this.fd >= 0;
  }

  /**
   * A number that grows whenever a link or address changed (or may have: no notifications, lost
   * ones, a read error). A caller keeps the one it last acted on and looks again when it differs.
   */
  generation(): number {
    if (this.fd < 0 || this.addon!.netwatchDrain(this.fd) !== 0) this.gen++;
    return this.gen;
  }

  close(): void {
    if (this.fd >= 0) this.addon!.closeFd(this.fd);
    this.fd = -1;
  }
}
