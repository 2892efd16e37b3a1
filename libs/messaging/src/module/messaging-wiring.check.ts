/**
 * Where `messaging.module.ts` finds the wiring check, which moved to `server/` so that health (a floor
 * below `module/`) can ask it whether the server was ever started. Import from there; this file goes
 * once the module does.
 */
export { MessagingWiringCheck, SERVER_START_GRACE_MS } from '../server/messaging-wiring.check';
