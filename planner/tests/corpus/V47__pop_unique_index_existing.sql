CREATE UNIQUE INDEX "widgets_name_idx" ON "widgets" (name);
