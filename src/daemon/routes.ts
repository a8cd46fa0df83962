// Keeps the kernel's routes equal to the peers' AllowedIPs: one route per prefix, via the interface.
import type { Logger } from '../log.js';
import { formatCidr, type Cidr } from '../tunnel/cidr.js';
import type { Device } from '../tunnel/device.js';
import { addRoute, deleteRoute, isDefaultRoute } from '../tun/netconfig.js';

export class RouteTable {
  private readonly installed = new Map<string, Cidr>();
  private warnedDefault = false;

  constructor(
    private readonly iface: string,
    private readonly table: string,
    private readonly log: Logger,
  ) {}

  async reconcile(dev: Device): Promise<void> {
    if (this.table === 'off') return;
    const want = new Map<string, Cidr>();
    for (const p of dev.peers.values()) {
      for (const c of dev.allowedIps.prefixesOf(p)) {
        if (isDefaultRoute(c)) {
          if (!this.warnedDefault) {
            this.log.warn({ component: 'routes', prefix: formatCidr(c) }, 'default route in AllowedIPs not installed: policy routing (wg-quick fwmark tables) is not supported yet; add it yourself or use Table = off');
            this.warnedDefault = true;
          }
          continue;
        }
        want.set(formatCidr(c), c);
      }
    }
    for (const [k, c] of this.installed) {
      if (!want.has(k)) {
        await deleteRoute(this.iface, c, this.table);
        this.installed.delete(k);
      }
    }
    for (const [k, c] of want) {
      if (!this.installed.has(k)) {
        await addRoute(this.iface, c, this.table);
        this.installed.set(k, c);
      }
    }
  }
}
