/**
 * Jest set-up of the `faults` project: a scenario (a load plus a fault, then a settle bounded by
 * its own waits) takes tens of seconds, far beyond the 20 s default; 4 minutes bounds a hung one.
 */
jest.setTimeout(240_000);
