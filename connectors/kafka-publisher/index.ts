/** The publish stage: change events into Kafka, and the source's small state topic. */
export { KafkaPublisher, type KafkaPublisherOptions } from './kafka-publisher.js';
export { KafkaStateStore } from './kafka-state-store.js';
export { ThreadedPublisher, type ThreadedPublisherOptions } from './threaded-publisher.js';
