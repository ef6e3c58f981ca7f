"""The secure Kafka profile: key material of the local broker, ACLs per principal, their commands."""
