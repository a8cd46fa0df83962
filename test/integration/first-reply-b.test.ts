// First reply after a fresh start and after a peer restart, A behind a UDP-blocking or a leaky NAT,
// B behind every kind (test/helpers/first-reply-cases.ts).
import { firstReplyCases } from '../helpers/first-reply-cases.js';

firstReplyCases(['udp-blocked', 'leaky']);
