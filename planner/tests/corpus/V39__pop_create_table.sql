CREATE TABLE "api_keys" (
"id" UUID NOT NULL,
PRIMARY KEY("id"),
"identity_id" UUID NOT NULL,
"label" VARCHAR (255) NOT NULL,
"hashed_secret" VARCHAR (255) NOT NULL,
"expires_at" timestamp,
"created_at" timestamp NOT NULL,
"updated_at" timestamp NOT NULL,
FOREIGN KEY ("identity_id") REFERENCES "identities" ("id") ON DELETE cascade
);
CREATE INDEX "api_keys_identity_id_idx" ON "api_keys" (identity_id);
CREATE UNIQUE INDEX "api_keys_hashed_secret_idx" ON "api_keys" (hashed_secret);
