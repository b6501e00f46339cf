BEGIN;
--
-- Add field priority to ticket
--
ALTER TABLE "helpdesk_ticket" ADD COLUMN "priority" integer DEFAULT 3 NOT NULL;
ALTER TABLE "helpdesk_ticket" ALTER COLUMN "priority" DROP DEFAULT;
--
-- Add field assignee to ticket
--
ALTER TABLE "helpdesk_ticket" ADD COLUMN "assignee_id" bigint NULL CONSTRAINT "helpdesk_ticket_assignee_id_3b2a1f0e_fk_auth_user_id" REFERENCES "auth_user"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "helpdesk_ticket_assignee_id_3b2a1f0e_fk_auth_user_id" IMMEDIATE;
CREATE INDEX "helpdesk_ticket_assignee_id_3b2a1f0e" ON "helpdesk_ticket" ("assignee_id");
COMMIT;
