/**
 * Deliveries that a server hands out again as first ones after it lost part of its consumer's
 * state. JetStream (nats-server 2.9 on a single server) writes a consumer's state (what it
 * delivered, what was acked) behind, a moment after the fact: a server killed in between comes
 * back with the state of a moment before, and delivers again what was delivered and even acked
 * since, with a delivery count of 1 and the same consumer sequences. The server cannot tell; the
 * instance that received them can, from the two sequences of each delivery:
 *
 * | delivery (stream seq, consumer seq) vs. the highest this instance received | meaning                 | marked `redelivered` |
 * | --------------------------------------------------------------------------- | ----------------------- | -------------------- |
 * | consumer seq above                                                          | a new delivery (normal) | no                   |
 * | consumer seq not above, stream seq above                                    | state rolled back, but a message not delivered here before (published since) | no |
 * | both not above                                                              | state rolled back: may have been delivered, and handled, before | yes |
 *
 * A consumer's sequence grows with every delivery it makes, to any instance: in normal operation a
 * delivery always comes above what an instance received. What is kept is two numbers per durable
 * consumer and instance. What it cannot see: a delivery made before the crash to another instance
 * of the route, or to a process that restarted since (it knows no sequence).
 */
export class DeliveryHighWater {
  private streamSeq = 0;
  private consumerSeq = 0;

  /**
   * Records a delivery of the consumer; true when it comes from a state the server rolled back and
   * may have been delivered before (see the table above).
   */
  rolledBack(streamSeq: number, consumerSeq: number): boolean {
    const back = consumerSeq <= this.consumerSeq && streamSeq <= this.streamSeq;
    if (consumerSeq > this.consumerSeq) this.consumerSeq = consumerSeq;
    if (streamSeq > this.streamSeq) this.streamSeq = streamSeq;
    return back;
  }
}
