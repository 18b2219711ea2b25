-- cutover:ignore require-concurent-index-creation
CREATE INDEX "widgets_color_idx" ON "widgets" (color);
