-- Access tokens carry the account's token_version; bumping it (password change,
-- sign-out everywhere, deletion) refuses every token issued before, durably.
ALTER TABLE client.clients ADD COLUMN token_version integer NOT NULL DEFAULT 0;
ALTER TABLE admin.admins ADD COLUMN token_version integer NOT NULL DEFAULT 0;
