/** The Avro encoding stage: change-event values in Confluent wire format, schemas in a Schema Registry. */
export {
  AvroEncoder,
  type AvroEncoderOptions,
  type AvroValue,
  avroSchemaFor,
  type DecodedAvroEvent,
  decodeAvroValue,
  sanitizeAvroName,
} from './avro-encoder.js';
