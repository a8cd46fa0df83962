// First reply after a fresh start and after a peer restart, A behind an endpoint-independent or a
// symmetric NAT, B behind every kind (test/helpers/first-reply-cases.ts).
import { firstReplyCases } from '../helpers/first-reply-cases.js';

firstReplyCases(['eim', 'symmetric']);
