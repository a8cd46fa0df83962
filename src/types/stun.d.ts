// The part of the `stun` package (CommonJS, untyped) that meshd uses.
declare module 'stun' {
  import type { Socket, RemoteInfo } from 'node:dgram';
  import type { EventEmitter } from 'node:events';

  export interface StunAddress {
    address: string;
    port: number;
    family: string;
  }
  export interface StunAttribute {
    type: number;
    value: unknown;
  }
  export interface StunMessage {
    type: number;
    transactionId: Buffer;
    addXorAddress(address: string, port: number): void;
    addSoftware(software: string): void;
    getAttribute(type: number): StunAttribute | undefined;
    toBuffer(): Buffer;
  }
  export interface StunServer extends EventEmitter {
    send(message: StunMessage, port: number, address: string, cb?: () => void): void;
    close(): void;
    listen(port: number, address?: string, cb?: () => void): void;
    on(event: 'bindingRequest', listener: (req: StunMessage, rinfo: RemoteInfo) => void): this;
    on(event: string, listener: (...args: unknown[]) => void): this;
  }
  export function createServer(options: { type: 'udp4' | 'udp6'; socket?: Socket }): StunServer;
  export function createMessage(type: number, transactionId?: Buffer): StunMessage;
  export function decode(b: Buffer): StunMessage;
  export function encode(m: StunMessage): Buffer;
  export const constants: Record<string, number>;
}
