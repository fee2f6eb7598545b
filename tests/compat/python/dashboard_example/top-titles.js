// Views per title: one table per window, the newest window first, each with its
// titles by views. The whole page is this file and live.js.
strom.live("/title-counts", {
  key: ["title", "window_start"],
  render(view) {
    document.getElementById("status").textContent =
      `${view.state} · ${view.received} results · ${view.table.size} rows`;
    const windows = new Map();
    for (const row of view.rows()) {
      const start = row.value.window_start;
      if (!windows.has(start)) {
        windows.set(start, []);
      }
      windows.get(start).push(row);
    }
    const sections = Array.from(windows.keys())
      .sort((a, b) => b - a)
      .map((start) => {
        const rows = windows.get(start).sort((a, b) =>
          b.value.count_by_title - a.value.count_by_title ||
          a.value.title.localeCompare(b.value.title));
        const section = document.createElement("section");
        section.dataset.window = start;
        const heading = document.createElement("h2");
        heading.textContent = strom.format(start, "window_start");
        const box = document.createElement("div");
        strom.table(box, rows, { columns: ["title", { field: "count_by_title", label: "views" }] });
        section.append(heading, box);
        return section;
      });
    document.getElementById("windows").replaceChildren(...sections);
  },
});
